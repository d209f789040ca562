//! Decides which paths are lineage and which are noise. Each rule has a name
//! and a config key; the job counts what each rule dropped.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::trackers::{tracker_of, Tracker};

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

#[derive(Clone)]
pub struct Filter {
    project_root: Option<PathBuf>,
    /// Paths of roar's own machinery (the `.roar/` folder, the socket folder).
    roar_dirs: Vec<PathBuf>,
    system: bool,
    packages: bool,
    torch: Option<Vec<PathBuf>>,
    /// `~/.cache` (or `$XDG_CACHE_HOME`) when library caches are dropped.
    library_cache: Option<PathBuf>,
    tmp: Option<Vec<PathBuf>>,
    /// Trackers whose folders are analysed instead of recorded.
    trackers: Vec<Tracker>,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Filter {
    /// Rules as configured; home and temporary folders from the environment.
    pub fn new(project_root: Option<PathBuf>, roar_dirs: Vec<PathBuf>, config: &Config) -> Filter {
        let home = env_path("HOME");
        let cache = env_path("XDG_CACHE_HOME").or_else(|| home.as_ref().map(|h| h.join(".cache")));
        let mut tmp = vec![PathBuf::from("/tmp"), PathBuf::from("/var/tmp")];
        tmp.extend(env_path("TMPDIR"));
        let torch = home
            .iter()
            .map(|h| h.join(".triton"))
            .chain(cache.iter().map(|c| c.join("torch")))
            .collect();
        Filter {
            project_root,
            roar_dirs,
            system: config.bool("filters.ignore_system_reads"),
            packages: config.bool("filters.ignore_package_reads"),
            torch: config.bool("filters.ignore_torch_cache").then_some(torch),
            library_cache: cache.filter(|_| config.bool("filters.ignore_library_caches")),
            tmp: config.bool("filters.ignore_tmp_files").then_some(tmp),
            trackers: Tracker::enabled(config),
        }
    }

    /// The name of the rule that drops `path`, or `None` when it is lineage.
    pub fn drop_reason(&self, path: &[u8]) -> Option<&'static str> {
        let p = Path::new(OsStr::from_bytes(path));
        if self.roar_dirs.iter().any(|d| p.starts_with(d)) {
            return Some("roar");
        }
        let components = || p.components().map(|c| c.as_os_str().as_bytes());
        if self.packages
            && components()
                .any(|c| PACKAGE_COMPONENTS.iter().any(|n| n.as_bytes() == c) || is_stdlib_dir(c))
        {
            return Some("package");
        }
        // Tracker folders usually live in the project: checked before it.
        if let Some(t) = tracker_of(path).filter(|t| self.trackers.contains(t)) {
            return Some(t.name());
        }
        // Below here, rules about places: the project is never one of them.
        if self
            .project_root
            .as_deref()
            .is_some_and(|root| p.starts_with(root))
        {
            return None;
        }
        if let Some(dirs) = &self.torch {
            if dirs.iter().any(|d| p.starts_with(d))
                || components().any(|c| c.starts_with(b"torchinductor_"))
            {
                return Some("torch_cache");
            }
        }
        if self
            .library_cache
            .as_deref()
            .is_some_and(|c| p.starts_with(c))
        {
            return Some("library_cache");
        }
        if self.system
            && SYSTEM_PREFIXES
                .iter()
                .any(|s| path.starts_with(s.as_bytes()))
        {
            return Some("system");
        }
        if self
            .tmp
            .as_ref()
            .is_some_and(|dirs| dirs.iter().any(|d| p.starts_with(d)))
        {
            return Some("tmp");
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

    fn filter(config: &str) -> Filter {
        std::env::set_var("HOME", "/home/u");
        std::env::remove_var("XDG_CACHE_HOME");
        std::env::remove_var("TMPDIR");
        Filter::new(
            Some("/tmp/proj".into()),
            vec!["/tmp/proj/.roar".into(), "/tmp/roar-sock".into()],
            &Config::parse(config).unwrap(),
        )
    }

    #[test]
    fn drops_noise_but_never_the_project() {
        let f = filter("");
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
            f.drop_reason(b"/tmp/proj/.venv/lib/python3.11/site-packages/np/__init__.py"),
            Some("package")
        );
        assert_eq!(f.drop_reason(b"/tmp/proj/.roar/roar.db"), Some("roar"));
        assert_eq!(f.drop_reason(b"/tmp/roar-sock/s"), Some("roar"));
        assert_eq!(f.drop_reason(b"/tmp/proj/data.csv"), None);
        assert_eq!(f.drop_reason(b"/tmp/other/scratch.bin"), Some("tmp"));
        assert_eq!(
            f.drop_reason(b"/home/u/.cache/pip/x.whl"),
            Some("library_cache")
        );
        assert_eq!(
            f.drop_reason(b"/home/u/.cache/torch/hub/m.pt"),
            Some("torch_cache")
        );
        assert_eq!(
            f.drop_reason(b"/tmp/torchinductor_u/ab/c.py"),
            Some("torch_cache")
        );
        assert_eq!(f.drop_reason(b"/data/python-notes.txt"), None);
        assert_eq!(
            f.drop_reason(b"/tmp/proj/wandb/run-x/files/a"),
            Some("wandb")
        );
        assert_eq!(
            f.drop_reason(b"/tmp/proj/mlruns/0/r/meta.yaml"),
            Some("mlflow")
        );
    }

    #[test]
    fn each_rule_follows_its_key() {
        let f = filter(
            "[filters]\nignore_system_reads = false\nignore_package_reads = false\n\
             ignore_torch_cache = false\nignore_library_caches = false\nignore_tmp_files = false\n\
             [analyzers.experiment_trackers]\nmlflow = false\n",
        );
        for p in [
            &b"/etc/hosts"[..],
            b"/usr/lib/python3.11/os.py",
            b"/home/u/.cache/torch/m.pt",
            b"/home/u/.cache/pip/x.whl",
            b"/tmp/other/scratch.bin",
            b"/tmp/proj/mlruns/0/r/meta.yaml",
        ] {
            assert_eq!(f.drop_reason(p), None, "{}", String::from_utf8_lossy(p));
        }
        assert_eq!(f.drop_reason(b"/tmp/proj/.roar/roar.db"), Some("roar"));
        assert_eq!(
            f.drop_reason(b"/tmp/proj/wandb/run-x/files/a"),
            Some("wandb")
        );
        let off = filter("[analyzers]\nexperiment_trackers = false\n");
        assert_eq!(off.drop_reason(b"/tmp/proj/wandb/run-x/files/a"), None);
    }
}
