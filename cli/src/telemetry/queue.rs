//! The queue directory: one JSON file per event, named so that a sorted
//! listing is the order events were made in. Files are written under a
//! dot-name and renamed into place, so the uploader never reads half an
//! event.

use std::io;
use std::path::{Path, PathBuf};

/// More than this many waiting events means the endpoint has been away for
/// a long time; the oldest are dropped rather than growing without bound.
const MAX_QUEUED: usize = 100;

/// Queues one event's bytes.
pub fn write(dir: &Path, sequence: u64, event_id: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{sequence:012}-{event_id}.json");
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    let all = list(dir);
    for old in all.iter().take(all.len().saturating_sub(MAX_QUEUED)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// The queued events, oldest first.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".json") && !n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Deletes every queued event (and half-written ones); returns how many
/// events there were.
pub fn wipe(dir: &Path) -> usize {
    let events = list(dir).len();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_capped_and_wiped() {
        let dir = std::env::temp_dir().join(format!("roar-tqueue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for seq in (1..=MAX_QUEUED as u64 + 2).rev() {
            write(&dir, seq, "id", b"{}\n").unwrap();
        }
        std::fs::write(dir.join(".partial.json.tmp"), b"{").unwrap();
        let files = list(&dir);
        assert_eq!(files.len(), MAX_QUEUED);
        assert!(files[0].ends_with("000000000003-id.json"), "{files:?}");
        assert_eq!(wipe(&dir), MAX_QUEUED);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
