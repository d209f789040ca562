//! Decides which paths are lineage and which are noise. Each rule has a name;
//! the job counts what each rule dropped.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Operating-system trees whose reads say nothing about a job's data.
const SYSTEM_PREFIXES: &[&str] = &[
    "/proc/",
    "/sys/",
    "/dev/",
    "/etc/",
    "/usr/",
    "/lib/",
    "/lib32/",
    "/lib64/",
    "/bin/",
    "/sbin/",
    "/run/",
    "/var/lib/",
    "/var/cache/",
    "/boot/",
    "/snap/",
    "/nix/store/",
];

/// Path components of interpreter and package trees.
const PACKAGE_COMPONENTS: &[&str] = &[
    "site-packages",
    "dist-packages",
    "__pycache__",
    ".pyenv",
    ".venv",
    "venv",
    ".conda",
    "conda",
    "miniconda3",
    "anaconda3",
    ".cargo",
    ".rustup",
];

pub struct Filter {
    project_root: Option<PathBuf>,
    /// Paths of roar's own machinery (the `.roar/` folder, the socket folder).
    roar_dirs: Vec<PathBuf>,
}

impl Filter {
    pub fn new(project_root: Option<PathBuf>, roar_dirs: Vec<PathBuf>) -> Filter {
        Filter {
            project_root,
            roar_dirs,
        }
    }

    /// The name of the rule that drops `path`, or `None` when it is lineage.
    pub fn drop_reason(&self, path: &[u8]) -> Option<&'static str> {
        let p = Path::new(OsStr::from_bytes(path));
        if self.roar_dirs.iter().any(|d| p.starts_with(d)) {
            return Some("roar");
        }
        if p.components().any(|c| {
            let c = c.as_os_str().as_encoded_bytes();
            PACKAGE_COMPONENTS.iter().any(|n| n.as_bytes() == c) || is_stdlib_dir(c)
        }) {
            return Some("package");
        }
        let in_project = self
            .project_root
            .as_deref()
            .is_some_and(|root| p.starts_with(root));
        if !in_project
            && SYSTEM_PREFIXES
                .iter()
                .any(|s| path.starts_with(s.as_bytes()))
        {
            return Some("system");
        }
        None
    }
}

/// `python3.11`-style directory holding an interpreter's standard library.
fn is_stdlib_dir(component: &[u8]) -> bool {
    component
        .strip_prefix(b"python")
        .is_some_and(|v| !v.is_empty() && v[0].is_ascii_digit() && v.contains(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_noise_but_never_the_project() {
        let f = Filter::new(
            Some("/usr/src/proj".into()),
            vec!["/usr/src/proj/.roar".into(), "/tmp/roar-sock".into()],
        );
        assert_eq!(f.drop_reason(b"/etc/ld.so.cache"), Some("system"));
        assert_eq!(
            f.drop_reason(b"/usr/lib/x86_64-linux-gnu/libc.so.6"),
            Some("system")
        );
        assert_eq!(
            f.drop_reason(b"/root/.pyenv/versions/3.11.7/lib/python3.11/os.py"),
            Some("package")
        );
        assert_eq!(
            f.drop_reason(b"/home/u/p/.venv/lib/python3.11/site-packages/np/__init__.py"),
            Some("package")
        );
        assert_eq!(f.drop_reason(b"/usr/src/proj/.roar/roar.db"), Some("roar"));
        assert_eq!(f.drop_reason(b"/tmp/roar-sock/s"), Some("roar"));
        assert_eq!(f.drop_reason(b"/usr/src/proj/data.csv"), None);
        assert_eq!(f.drop_reason(b"/tmp/work/train.py"), None);
        assert_eq!(f.drop_reason(b"/data/python-notes.txt"), None);
    }
}
