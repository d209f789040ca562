//! macOS System Integrity Protection, as far as tracing is concerned: the
//! loader ignores and purges `DYLD_*` variables (so `DYLD_INSERT_LIBRARIES`)
//! for programs under the protected system folders, and so does the kernel's
//! choice of program for a script: a script whose `#!` interpreter is
//! protected (`#!/bin/sh`, `#!/usr/bin/env python3`) runs that protected
//! interpreter first, and everything it starts inherits the purged
//! environment. Pure functions over bytes: the shim asks at each exec, the CLI
//! about the command it starts; both pass paths with symlinks resolved when
//! they can.

/// Folders whose programs SIP protects. `/usr/local` is not protected and
/// is not under any of these.
const PROTECTED: [&[u8]; 6] = [
    b"/usr/bin",
    b"/bin",
    b"/sbin",
    b"/usr/sbin",
    b"/usr/libexec",
    b"/System",
];

/// The writable data volume, reachable under `/System` but never protected:
/// a path resolved through a firmlink may be spelled from here.
const DATA_VOLUME: &[u8] = b"/System/Volumes/Data";

/// The kernel reads at most this much of a script for its `#!` line.
pub const SHEBANG_MAX: usize = 512;

/// `path` lies inside `dir` (component-wise: `/binaries` is not in `/bin`).
fn inside(path: &[u8], dir: &[u8]) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.first() == Some(&b'/'))
}

/// Whether an absolute, symlink-free `path` names a SIP-protected program.
pub fn is_protected(path: &[u8]) -> bool {
    !inside(path, DATA_VOLUME) && PROTECTED.iter().any(|dir| inside(path, dir))
}

/// The interpreter a script's first bytes name after `#!` (up to the first
/// blank), or `None` when `head` is not a script the kernel would run that way.
pub fn interpreter(head: &[u8]) -> Option<&[u8]> {
    let head = &head[..head.len().min(SHEBANG_MAX)];
    let line = head.strip_prefix(b"#!")?;
    // Without a line end inside the limit the kernel refuses the script.
    let end = line.iter().position(|&b| b == b'\n')?;
    let line = &line[..end];
    let start = line.iter().position(|&b| b != b' ' && b != b'\t')?;
    let rest = &line[start..];
    let len = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == b'\r')
        .unwrap_or(rest.len());
    Some(&rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_folders_and_their_neighbours() {
        for p in [
            "/usr/bin/python3",
            "/bin/sh",
            "/sbin/mount",
            "/usr/sbin/dtrace",
            "/usr/libexec/path_helper",
            "/System/Library/Frameworks/Python.framework/python",
        ] {
            assert!(is_protected(p.as_bytes()), "{p}");
        }
        for p in [
            "/usr/local/bin/python3",
            "/opt/homebrew/bin/python3",
            "/binaries/x",
            "/usr/bin",
            "/System/Volumes/Data/Users/me/train.py",
            "/Users/me/bin/sh",
            "bin/sh",
        ] {
            assert!(!is_protected(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn shebang_interpreters() {
        assert_eq!(interpreter(b"#!/bin/sh\necho"), Some(&b"/bin/sh"[..]));
        assert_eq!(
            interpreter(b"#! /usr/bin/env python3\n"),
            Some(&b"/usr/bin/env"[..])
        );
        assert_eq!(interpreter(b"#!/bin/bash -eu\r\n"), Some(&b"/bin/bash"[..]));
        assert_eq!(interpreter(b"#!\t/bin/zsh\tx\n"), Some(&b"/bin/zsh"[..]));
        assert_eq!(interpreter(b"#!/bin/sh"), None, "no line end");
        assert_eq!(interpreter(b"#!   \n"), None);
        assert_eq!(interpreter(b"\xcf\xfa\xed\xfe binary"), None);
        let mut long = b"#!/bin/sh ".to_vec();
        long.resize(SHEBANG_MAX + 10, b'x');
        long.push(b'\n');
        assert_eq!(interpreter(&long), None, "line end past the kernel's limit");
    }
}
