//! Every path a job touched, stored once and named by a small id, with the
//! filter's verdict on it. A job of a million events over a few thousand
//! files then holds a few thousand paths, not a million copies.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::Arc;

use crate::filter::Filter;

pub type PathId = u32;

pub struct PathTable {
    filter: Filter,
    ids: HashMap<Arc<[u8]>, PathId>,
    names: Vec<Arc<[u8]>>,
    /// The filter rule that drops each path, if any.
    verdicts: Vec<Option<&'static str>>,
    /// A path as opened → the file opened (symlinks followed), decided at
    /// its first open.
    opened_as: HashMap<PathId, PathId>,
}

impl PathTable {
    pub fn new(filter: Filter) -> PathTable {
        PathTable {
            filter,
            ids: HashMap::new(),
            names: Vec::new(),
            verdicts: Vec::new(),
            opened_as: HashMap::new(),
        }
    }

    pub fn id(&mut self, path: &[u8]) -> PathId {
        if let Some(&id) = self.ids.get(path) {
            return id;
        }
        let id = PathId::try_from(self.names.len()).expect("fewer than 2^32 distinct paths");
        let name: Arc<[u8]> = path.into();
        let verdict = self.filter.drop_reason(path);
        if verdict == Some("package") {
            crate::python::prefetch_site(path);
        }
        self.verdicts.push(verdict);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// The id of the file an open of `path` reached: through a symlink, its
    /// target (as the kernel's view, /proc/PID/fd, names it). Decided at the
    /// first open, while the link most likely still exists; a dangling one
    /// stays as named.
    pub fn opened(&mut self, path: &[u8]) -> PathId {
        let named = self.id(path);
        if let Some(&id) = self.opened_as.get(&named) {
            return id;
        }
        let target = follow_symlink(path).map_or(named, |t| self.id(&t));
        self.opened_as.insert(named, target);
        target
    }

    pub fn name(&self, id: PathId) -> &Arc<[u8]> {
        &self.names[id as usize]
    }

    /// The filter rule dropping `id`, `None` when it is lineage.
    pub fn drop_reason(&self, id: PathId) -> Option<&'static str> {
        self.verdicts[id as usize]
    }

    pub fn kept(&self, id: PathId) -> bool {
        self.drop_reason(id).is_none()
    }
}

fn follow_symlink(path: &[u8]) -> Option<Vec<u8>> {
    let p = Path::new(OsStr::from_bytes(path));
    if !p.symlink_metadata().ok()?.file_type().is_symlink() {
        return None;
    }
    Some(p.canonicalize().ok()?.into_os_string().into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_per_path_and_opens_follow_symlinks_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.csv");
        let link = dir.path().join("link.csv");
        std::fs::write(&data, "x").unwrap();
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let filter = Filter::new(Some(dir.path().to_path_buf()), vec![], &Default::default());
        let mut t = PathTable::new(filter);
        let bytes = |p: &Path| p.as_os_str().as_bytes().to_vec();
        let a = t.id(&bytes(&data));
        assert_eq!(t.id(&bytes(&data)), a);
        assert_eq!(t.opened(&bytes(&link)), a);
        // Decided at the first open: the link's later fate does not matter.
        std::fs::remove_file(&link).unwrap();
        assert_eq!(t.opened(&bytes(&link)), a);
        assert_eq!(&**t.name(a), bytes(&data).as_slice());
        assert!(t.kept(a));
        let proc_status = t.id(b"/proc/self/status");
        assert_eq!(t.drop_reason(proc_status), Some("system"));
    }
}
