//! Whether the command roar itself starts escapes the preload library
//! (deeper executables are checked by the shim at their exec): on macOS
//! first whether System Integrity Protection strips `DYLD_*` from it.

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
    #[cfg(target_os = "macos")]
    if sip::protected(&path) {
        return Some((shown(path), UntracedReason::Sip));
    }
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
    Some((shown(path), reason))
}

/// Absolute but not canonical, as the shim reports the executables it sees.
fn shown(path: PathBuf) -> String {
    let shown = std::path::absolute(&path).unwrap_or(path);
    shown.to_string_lossy().into_owned()
}

#[cfg(target_os = "macos")]
mod sip {
    use std::ffi::OsStr;
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use roar_protocol::sip;

    /// Whether the program at `path` is SIP-protected, by its path with
    /// symlinks resolved.
    fn is_protected(path: &Path) -> bool {
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        sip::is_protected(real.as_os_str().as_bytes())
    }

    /// Whether the loader will drop `DYLD_*` for the program at `path`: it is
    /// protected itself, or it is a script whose `#!` interpreter is
    /// (`#!/bin/sh`; `#!/usr/bin/env python3`, whatever python3 it finds,
    /// since /usr/bin/env already lost the variables).
    pub fn protected(path: &Path) -> bool {
        if is_protected(path) {
            return true;
        }
        let mut head = Vec::with_capacity(sip::SHEBANG_MAX);
        let read = std::fs::File::open(path)
            .and_then(|f| f.take(sip::SHEBANG_MAX as u64).read_to_end(&mut head));
        read.is_ok()
            && sip::interpreter(&head)
                .is_some_and(|i| is_protected(Path::new(OsStr::from_bytes(i))))
    }
}
