//! What a job's package reads say instead of being lineage: the Python
//! interpreters it ran and the installed distributions whose files it read
//! (name and version from their `.dist-info` METADATA).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interpreter {
    pub path: String,
    pub version: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Distribution {
    pub name: String,
    pub version: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Runtime {
    #[serde(default)]
    pub interpreters: Vec<Interpreter>,
    #[serde(default)]
    pub distributions: Vec<Distribution>,
}

fn is_python(exe: &[u8]) -> bool {
    let name = exe.rsplit(|&b| b == b'/').next().unwrap_or(exe);
    name.strip_prefix(b"python")
        .is_some_and(|v| v.iter().all(|c| c.is_ascii_digit() || *c == b'.'))
}

/// Values read from a file or directory once per collector, on a thread
/// of their own started by the first ask, so that asking early (when an
/// interpreter says hello, at a job's first package read) has the answer
/// ready by the job's end. The modification time is part of the key: an
/// upgrade or an install is read again.
struct Background<T> {
    slots: Mutex<HashMap<FileVersion, Arc<Mutex<Slot<T>>>>>,
}

/// A path and its modification time.
type FileVersion = (PathBuf, Option<SystemTime>);

/// A site-packages index: top-level module or package to distribution.
type SiteIndex = Arc<HashMap<String, Distribution>>;

enum Slot<T> {
    Running(JoinHandle<T>),
    Done(T),
}

impl<T: Clone + Default + Send + 'static> Background<T> {
    fn new() -> Self {
        Background {
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The slot of `path`, its reading started now if it is new.
    fn start(&self, path: &Path, read: fn(&Path) -> T) -> Arc<Mutex<Slot<T>>> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        lock(&self.slots)
            .entry((path.to_path_buf(), mtime))
            .or_insert_with(|| {
                let path = path.to_path_buf();
                let reading = std::thread::spawn(move || read(&path));
                Arc::new(Mutex::new(Slot::Running(reading)))
            })
            .clone()
    }

    /// The value for `path`, waiting for its reading if need be.
    fn get(&self, path: &Path, read: fn(&Path) -> T) -> T {
        let slot = self.start(path, read);
        let mut slot = lock(&slot);
        let value = match std::mem::replace(&mut *slot, Slot::Done(T::default())) {
            Slot::Running(reading) => reading.join().unwrap_or_default(),
            Slot::Done(value) => value,
        };
        *slot = Slot::Done(value.clone());
        value
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Interpreter versions (`python --version` takes 10-20 ms).
fn versions() -> &'static Background<Option<String>> {
    static VERSIONS: OnceLock<Background<Option<String>>> = OnceLock::new();
    VERSIONS.get_or_init(Background::new)
}

/// site-packages indexes (every dist-info's METADATA and RECORD: ~10 ms on
/// an ordinary environment).
fn site_indexes() -> &'static Background<SiteIndex> {
    static INDEXES: OnceLock<Background<SiteIndex>> = OnceLock::new();
    INDEXES.get_or_init(Background::new)
}

fn read_site_index(site: &Path) -> SiteIndex {
    Arc::new(index_site(site))
}

/// Starts asking the version of `exe` when it is a Python interpreter.
pub fn prefetch(exe: &[u8]) {
    if is_python(exe) {
        versions().start(Path::new(OsStr::from_bytes(exe)), version_of);
    }
}

/// Starts reading the index of the site-packages directory `path` is in.
pub fn prefetch_site(path: &[u8]) {
    if let Some((site, _)) = site_and_top(Path::new(OsStr::from_bytes(path))) {
        site_indexes().start(&site, read_site_index);
    }
}

/// `python --version` (stdout on Python 3, stderr on Python 2).
fn version_of(exe: &Path) -> Option<String> {
    let out = Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .env_remove(roar_protocol::env::PRELOAD)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .into_owned();
    text.trim().strip_prefix("Python ").map(str::to_string)
}

/// The module name a top-level entry of site-packages provides.
fn module_of(entry: &str) -> &str {
    entry.split('.').next().unwrap_or(entry)
}

/// Name and Version from a METADATA file.
fn metadata(dist_info: &Path) -> Option<Distribution> {
    let text = std::fs::read_to_string(dist_info.join("METADATA")).ok()?;
    let field = |key: &str| {
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
    };
    Some(Distribution {
        name: field("Name:")?,
        version: field("Version:")?,
    })
}

/// Top-level module → distribution, for one site-packages folder.
fn index_site(site: &Path) -> HashMap<String, Distribution> {
    let mut index = HashMap::new();
    let Ok(entries) = std::fs::read_dir(site) else {
        return index;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        if dir.extension() != Some(OsStr::new("dist-info")) {
            continue;
        }
        let Some(dist) = metadata(&dir) else { continue };
        let mut modules: BTreeSet<String> = BTreeSet::new();
        if let Ok(top) = std::fs::read_to_string(dir.join("top_level.txt")) {
            modules.extend(
                top.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
        if let Ok(record) = std::fs::read_to_string(dir.join("RECORD")) {
            for line in record.lines() {
                let path = line.split(',').next().unwrap_or("");
                if let Some(first) = path
                    .split('/')
                    .next()
                    .filter(|f| !f.is_empty() && !f.starts_with(".."))
                {
                    modules.insert(module_of(first).to_string());
                }
            }
        }
        modules.insert(dist.name.to_lowercase().replace('-', "_"));
        if let Some(name) = dir.file_name().and_then(OsStr::to_str) {
            modules.insert(name.to_string());
        }
        for m in modules {
            index.entry(m).or_insert_with(|| dist.clone());
        }
    }
    index
}

/// Splits a path inside a site-packages (or dist-packages) folder into the
/// folder and the top-level entry read.
fn site_and_top(path: &Path) -> Option<(PathBuf, String)> {
    let mut site = PathBuf::new();
    let mut parts = path.components();
    for c in parts.by_ref() {
        site.push(c);
        if matches!(
            c.as_os_str().to_str(),
            Some("site-packages" | "dist-packages")
        ) {
            let mut top = parts.next()?.as_os_str().to_str()?;
            // A top-level module is usually loaded from its cached bytecode.
            if top == "__pycache__" {
                top = parts.next()?.as_os_str().to_str()?;
            }
            return Some((site, top.to_string()));
        }
    }
    None
}

/// The runtime a job used: interpreters among its processes' executables,
/// distributions among the package files it read.
pub fn runtime(package_reads: &[Vec<u8>], exes: &[Vec<u8>]) -> Runtime {
    let interpreters: BTreeSet<Interpreter> = exes
        .iter()
        .filter(|e| is_python(e))
        .map(|e| {
            let path = Path::new(OsStr::from_bytes(e));
            Interpreter {
                path: path.to_string_lossy().into_owned(),
                version: versions().get(path, version_of),
            }
        })
        .collect();
    let mut by_site: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for p in package_reads {
        if let Some((site, top)) = site_and_top(Path::new(OsStr::from_bytes(p))) {
            by_site.entry(site).or_default().insert(top);
        }
    }
    let mut distributions = BTreeSet::new();
    for (site, tops) in by_site {
        let index = site_indexes().get(&site, read_site_index);
        for top in tops {
            if let Some(d) = index.get(&top).or_else(|| index.get(module_of(&top))) {
                distributions.insert(d.clone());
            }
        }
    }
    Runtime {
        interpreters: interpreters.into_iter().collect(),
        distributions: distributions.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_come_from_dist_info() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("lib/python3.11/site-packages");
        let info = site.join("PyYAML-6.0.1.dist-info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::create_dir_all(site.join("yaml")).unwrap();
        std::fs::write(
            info.join("METADATA"),
            "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\n\nbody\n",
        )
        .unwrap();
        std::fs::write(info.join("top_level.txt"), "_yaml\nyaml\n").unwrap();
        let plain = site.join("six-1.16.0.dist-info");
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::write(plain.join("METADATA"), "Name: six\nVersion: 1.16.0\n").unwrap();
        std::fs::write(plain.join("RECORD"), "six.py,sha256=x,1\n").unwrap();
        let read = |rel: &str| site.join(rel).into_os_string().into_vec();
        use std::os::unix::ffi::OsStringExt;
        let rt = runtime(
            &[
                read("yaml/__init__.py"),
                read("_yaml.cpython-311-x86_64-linux-gnu.so"),
                read("six.py"),
                read("__pycache__/six.cpython-311.pyc"),
            ],
            &[b"/usr/bin/cat".to_vec()],
        );
        assert_eq!(
            rt.distributions,
            vec![
                Distribution {
                    name: "PyYAML".into(),
                    version: "6.0.1".into()
                },
                Distribution {
                    name: "six".into(),
                    version: "1.16.0".into()
                },
            ]
        );
        assert!(rt.interpreters.is_empty());
        assert!(
            is_python(b"/usr/bin/python3.11")
                && is_python(b"python")
                && !is_python(b"/x/python-config")
        );
    }
}
