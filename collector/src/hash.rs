//! BLAKE3 of files, with a cache keyed by file identity and a check that the
//! file did not change while it was read.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::store::FileKey;

/// Files at least this large are memory-mapped and hashed on several threads.
const MMAP_THRESHOLD: u64 = 1 << 20;
/// A file still changing after this many reads is reported as unstable.
const MAX_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct Hashed {
    pub hash: String,
    pub size: u64,
    pub key: FileKey,
    pub from_cache: bool,
}

#[derive(Debug)]
pub enum HashError {
    /// Gone, a directory, a device...: not content to record.
    NotAFile,
    /// Kept changing while it was read.
    Unstable,
    Io(io::Error),
}

fn file_key(meta: &std::fs::Metadata) -> FileKey {
    FileKey {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    }
}

/// The identity of the file at `path`, if it is a regular file.
pub fn stat_file(path: &Path) -> Result<FileKey, HashError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(file_key(&m)),
        Ok(_) => Err(HashError::NotAFile),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(HashError::NotAFile),
        Err(e) => Err(HashError::Io(e)),
    }
}

fn hash_content(path: &Path, size: u64) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    if size >= MMAP_THRESHOLD {
        hasher.update_mmap_rayon(path)?;
    } else {
        let mut buf = Vec::with_capacity(size as usize + 1);
        File::open(path)?.read_to_end(&mut buf)?;
        hasher.update(&buf);
    }
    Ok(hasher.finalize())
}

/// Hashes `path`, or returns the cached hash when its identity is unchanged.
pub fn hash_file(
    path: &Path,
    cached: &dyn Fn(&FileKey) -> Option<String>,
) -> Result<Hashed, HashError> {
    let mut key = stat_file(path)?;
    if let Some(hash) = cached(&key) {
        return Ok(Hashed {
            hash,
            size: key.size,
            key,
            from_cache: true,
        });
    }
    for _ in 0..MAX_ATTEMPTS {
        let hash = hash_content(path, key.size).map_err(HashError::Io)?;
        let after = stat_file(path)?;
        if after == key {
            return Ok(Hashed {
                hash: hash.to_hex().to_string(),
                size: key.size,
                key,
                from_cache: false,
            });
        }
        key = after;
    }
    Err(HashError::Unstable)
}

/// Hashes many files on all cores; results come back in the order given.
/// `done` is told each file's size as it is finished.
pub fn hash_all(
    paths: &[&Path],
    cached: &(dyn Fn(&FileKey) -> Option<String> + Sync),
    done: &(dyn Fn(u64) + Sync),
) -> Vec<Result<Hashed, HashError>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(paths.len().max(1));
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<Hashed, HashError>>> = Vec::new();
    slots.resize_with(paths.len(), || None);
    let results = Mutex::new(slots);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { break };
                let r = hash_file(path, cached);
                done(r.as_ref().map_or(0, |h| h.size));
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every index is hashed once"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_blake3_and_cache_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        let big = dir.path().join("big");
        std::fs::write(&small, b"hello").unwrap();
        let big_data: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &big_data).unwrap();
        let none = |_: &FileKey| None;
        let got = hash_all(&[&small, &big, &dir.path().join("missing")], &none, &|_| {});
        let h = got[0].as_ref().unwrap();
        assert_eq!(h.hash, blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(h.size, 5);
        assert_eq!(
            got[1].as_ref().unwrap().hash,
            blake3::hash(&big_data).to_hex().as_str()
        );
        assert!(matches!(got[2], Err(HashError::NotAFile)));
        let key = h.key;
        let cached = move |k: &FileKey| (*k == key).then(|| "cached".to_string());
        let again = hash_file(&small, &cached).unwrap();
        assert!(again.from_cache);
        assert_eq!(again.hash, "cached");
        assert!(matches!(
            hash_file(dir.path(), &none),
            Err(HashError::NotAFile)
        ));
    }
}
