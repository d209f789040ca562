//! Lexical normalisation of the absolute paths the shim sends: `.` and empty
//! components dropped, `..` applied. Symlinks are left alone on purpose: the
//! path a program named is the path a user will look for.

pub fn normalize(path: &[u8]) -> Vec<u8> {
    if !path.starts_with(b"/") {
        return path.to_vec();
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn lexical() {
        assert_eq!(normalize(b"/a/./b//c/../d"), b"/a/b/d");
        assert_eq!(normalize(b"/.."), b"/");
        assert_eq!(normalize(b"/x/\xff/"), b"/x/\xff");
        assert_eq!(normalize(b"rel/./x"), b"rel/./x");
    }
}
