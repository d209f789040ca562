//! The descriptors this process opened for writing, so that closing one can
//! tell the collector the file may be complete: it then hashes outputs while
//! the job goes on instead of all at the end.
//!
//! A bit per fd below [`LIMIT`], lock-free (hooks run on any thread and in
//! signal handlers). A fork copies it along with the fds; an exec'd image
//! starts empty, so a write fd inherited across exec sends no Close (its
//! output is hashed at the end). The collector treats a Close as a hint and
//! checks the file's identity again before it trusts an early hash.

use std::sync::atomic::{AtomicU64, Ordering};

/// Descriptors at or above this are not followed (hashed at the end).
const LIMIT: usize = 4096;

static WRITE_FDS: [AtomicU64; LIMIT / 64] = [const { AtomicU64::new(0) }; LIMIT / 64];

/// The bit of `fd`; none when untraced or in a vfork child, whose fds are
/// its own while the bits are its parent's.
fn slot(fd: libc::c_int) -> Option<(&'static AtomicU64, u64)> {
    if !crate::conn::active() {
        return None;
    }
    let fd = usize::try_from(fd).ok().filter(|&fd| fd < LIMIT)?;
    Some((&WRITE_FDS[fd / 64], 1u64 << (fd % 64)))
}

/// `fd` was just opened for writing.
pub fn mark(fd: libc::c_int) {
    if let Some((word, bit)) = slot(fd) {
        word.fetch_or(bit, Ordering::Relaxed);
    }
}

/// Forgets `fd`; true when it had been opened for writing.
pub fn take(fd: libc::c_int) -> bool {
    slot(fd).is_some_and(|(word, bit)| word.fetch_and(!bit, Ordering::Relaxed) & bit != 0)
}

/// Forgets every fd in `first..=last` (closed in bulk, which says nothing
/// about whether the files are complete).
#[cfg(target_os = "linux")]
pub fn forget_range(first: libc::c_uint, last: libc::c_uint) {
    if !crate::conn::active() {
        return;
    }
    let last = (last as usize).min(LIMIT - 1);
    for fd in first as usize..=last {
        WRITE_FDS[fd / 64].fetch_and(!(1u64 << (fd % 64)), Ordering::Relaxed);
    }
}
