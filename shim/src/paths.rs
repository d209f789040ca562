//! Absolute paths for events, without `realpath` and without system calls for
//! paths that are already absolute (those are borrowed as they are). Relative
//! paths are joined to the cached working directory, or to the directory an
//! fd names (`/proc/self/fd/N`). The collector normalises `.`/`..` lexically.

use libc::c_int;

use crate::sys;

pub const PATH_MAX: usize = libc::PATH_MAX as usize;
/// Room for a directory plus a relative path, each up to PATH_MAX.
pub const SCRATCH_LEN: usize = 2 * PATH_MAX + 2;

/// The process's working directory as last seen (constructor, chdir, fchdir).
pub struct Cwd {
    buf: [u8; PATH_MAX],
    len: usize,
}

impl Cwd {
    pub const fn new() -> Self {
        Cwd {
            buf: [0; PATH_MAX],
            len: 0,
        }
    }

    /// Re-reads the working directory (one getcwd).
    pub fn refresh(&mut self) {
        self.len = sys::getcwd(&mut self.buf);
    }

    pub fn get(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `path` as seen from `dirfd` (`AT_FDCWD` for the working directory), made
/// absolute in `scratch` when it is relative. Falls back to `path` unchanged
/// when the base directory is unknown or the result would not fit.
pub fn resolve<'a>(cwd: &Cwd, scratch: &'a mut [u8], dirfd: c_int, path: &'a [u8]) -> &'a [u8] {
    if path.first() == Some(&b'/') {
        return path;
    }
    let base = if dirfd == libc::AT_FDCWD {
        let c = cwd.get();
        if c.len() > scratch.len() {
            return path;
        }
        scratch[..c.len()].copy_from_slice(c);
        c.len()
    } else {
        sys::fd_path(dirfd, scratch)
    };
    if base == 0 {
        return path;
    }
    if path.is_empty() {
        // AT_EMPTY_PATH style: the fd (or directory) itself.
        return &scratch[..base];
    }
    let sep = usize::from(scratch[base - 1] != b'/');
    let total = base + sep + path.len();
    if total > scratch.len() {
        return path;
    }
    if sep == 1 {
        scratch[base] = b'/';
    }
    scratch[base + sep..total].copy_from_slice(path);
    &scratch[..total]
}
