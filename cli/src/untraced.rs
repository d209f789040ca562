//! Whether the command roar itself starts escapes the preload library
//! (deeper executables are checked by the shim at their exec).

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{getgid, getuid};
use roar_protocol::{exe, UntracedReason};

/// The file `program` names, searched on PATH like execvp when it has no slash.
fn resolve(program: &OsStr) -> Option<PathBuf> {
    let p = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(p))
        .find(|c| {
            c.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

pub fn check(program: &OsStr) -> Option<(String, UntracedReason)> {
    let path = resolve(program)?;
    let meta = path.metadata().ok()?;
    let mode = meta.mode();
    let setid = (mode & 0o4000 != 0 && meta.uid() != getuid().as_raw())
        || (mode & 0o2000 != 0 && meta.gid() != getgid().as_raw());
    let honoured = setid && !statvfs(&path).is_ok_and(|fs| fs.flags().contains(FsFlags::ST_NOSUID));
    let mut file = std::fs::File::open(&path).ok()?;
    let mut head = Vec::with_capacity(exe::HEAD_LEN);
    (&mut file)
        .take(exe::HEAD_LEN as u64)
        .read_to_end(&mut head)
        .ok()?;
    let reason = exe::untraceable(&head, honoured, |note| {
        let mut buf = Vec::new();
        let _ = file
            .seek(SeekFrom::Start(note.offset))
            .and_then(|_| (&mut file).take(note.size.min(4096)).read_to_end(&mut buf));
        buf
    })?;
    // Absolute but not canonical, as the shim reports the executables it sees.
    let shown = std::path::absolute(&path).unwrap_or(path);
    Some((shown.to_string_lossy().into_owned(), reason))
}
