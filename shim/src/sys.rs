//! Thin wrappers over the system calls the shim makes for itself. Hooked
//! names (`close`, `dup2`, ...) are always called through [`crate::real`],
//! never through `libc::`, which would re-enter our own exports.

use libc::c_int;

use crate::{platform, real};

/// Lowest fd the shim's socket is moved to, out of the range programs use.
const HIGH_FD: c_int = 500;

#[inline]
pub fn errno() -> c_int {
    // SAFETY: the platform returns this thread's errno slot, always valid.
    unsafe { *platform::errno_slot() }
}

#[inline]
pub fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *platform::errno_slot() = e }
}

/// CLOCK_MONOTONIC in nanoseconds (a vDSO call, no system call).
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

pub fn close(fd: c_int) {
    if let Some(close) = real::close() {
        // SAFETY: closing an fd the shim owns.
        unsafe { close(fd) };
    }
}

pub use platform::{fd_path, inode};

/// Writes all of `data`, never raising SIGPIPE. `Err(errno)` on failure.
pub fn send_all(fd: c_int, mut data: &[u8]) -> Result<(), c_int> {
    while !data.is_empty() {
        // SAFETY: `data` is a valid readable slice for its length.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), platform::SEND_FLAGS) };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                e => return Err(e),
            }
        }
        data = &data[n as usize..];
    }
    Ok(())
}

const SEND_TIMEOUT_S: libc::time_t = 5;

/// Connects a close-on-exec stream socket to `path`, on a high fd.
pub fn connect_unix(path: &[u8]) -> Result<c_int, c_int> {
    // SAFETY: a zeroed sockaddr_un is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if path.is_empty() || path.len() >= addr.sun_path.len() || path.contains(&0) {
        return Err(libc::ENAMETOOLONG);
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let fd = platform::stream_socket();
    if fd < 0 {
        return Err(errno());
    }
    // A collector that stops reading must not hang the program: a send that
    // cannot progress for this long fails, and the shim goes passive.
    let timeout = libc::timeval {
        tv_sec: SEND_TIMEOUT_S,
        tv_usec: 0,
    };
    // SAFETY: `timeout` is a valid timeval of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    loop {
        // SAFETY: `addr` is an initialised sockaddr_un of `len` bytes.
        let r = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) };
        if r == 0 {
            break;
        }
        let e = errno();
        if e != libc::EINTR {
            close(fd);
            return Err(e);
        }
    }
    Ok(move_high(fd))
}

/// Moves `fd` to the lowest free fd ≥ 500 (close-on-exec), or as high as
/// the fd limit allows when that is lower; keeps it where it is otherwise.
pub fn move_high(fd: c_int) -> c_int {
    if fd >= HIGH_FD {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC only creates a new fd.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, HIGH_FD) };
    if high >= 0 {
        close(fd);
        return high;
    }
    // EINVAL: the fd limit is below HIGH_FD; go as high as it allows.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        c_int::try_from(lim.rlim_cur).unwrap_or(c_int::MAX)
    } else {
        c_int::MAX
    };
    let target = HIGH_FD.min(limit.saturating_sub(1));
    if fd >= target {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC only creates a new fd.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, target) };
    if high < 0 {
        return fd;
    }
    close(fd);
    high
}

/// `readlink(path)` (NUL-terminated) into `out`; 0 unless it is absolute.
#[cfg(target_os = "linux")]
pub fn readlink(path: &[u8], out: &mut [u8]) -> usize {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: `path` is NUL-terminated, `out` is writable for its length.
    let n = unsafe { libc::readlink(path.as_ptr().cast(), out.as_mut_ptr().cast(), out.len()) };
    if n <= 0 || n as usize >= out.len() || out[0] != b'/' {
        return 0;
    }
    n as usize
}

/// `getcwd` into `out`; the length, or 0 when unknown.
pub fn getcwd(out: &mut [u8]) -> usize {
    // SAFETY: `out` is writable for its length.
    let p = unsafe { libc::getcwd(out.as_mut_ptr().cast(), out.len()) };
    if p.is_null() {
        return 0;
    }
    out.iter().position(|&b| b == 0).unwrap_or(0)
}

fn os_path(p: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(p))
}

pub fn is_file(path: &[u8]) -> bool {
    std::fs::metadata(os_path(path)).is_ok_and(|m| m.is_file())
}

pub fn is_executable_file(path: &[u8]) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(os_path(path))
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fills `buf` from the system's randomness; false when there is none.
pub fn random(buf: &mut [u8]) -> bool {
    use std::io::Read;
    std::fs::File::open("/dev/urandom").is_ok_and(|mut f| f.read_exact(buf).is_ok())
}

/// A close-on-exec fd on `path` (created if missing) to lock, or -1.
pub fn open_lock(path: &[u8]) -> c_int {
    use std::os::fd::IntoRawFd;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(os_path(path))
        .map_or(-1, |f| f.into_raw_fd())
}

/// Takes the exclusive lock on `fd` without waiting; released by closing it.
pub fn try_lock(fd: c_int) -> bool {
    // SAFETY: flock on an fd we own.
    unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether `path` exists and changed less than `within` ago.
pub fn modified_within(path: &[u8], within: std::time::Duration) -> bool {
    std::fs::metadata(os_path(path))
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < within))
}

// Between fork and exec in the collector's starter nothing of the shim may
// run (its hooks, its locks): these go to the kernel, or on macOS to libc,
// whose functions the interposing library's own calls reach unhooked.

/// `open(path, flags, 0600)`.
///
/// # Safety
/// `path` is a NUL-terminated string.
pub unsafe fn raw_open(path: *const libc::c_char, flags: c_int) -> c_int {
    #[cfg(target_os = "linux")]
    // SAFETY: openat with a valid path pointer, by the contract above.
    return unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path, flags, 0o600) as c_int };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: as above.
    return unsafe { libc::open(path, flags, 0o600 as libc::c_uint) };
}

pub fn raw_dup2(old: c_int, new: c_int) {
    #[cfg(target_os = "linux")]
    // SAFETY: dup3 on fds; failure is ignored.
    unsafe {
        libc::syscall(libc::SYS_dup3, old, new, 0)
    };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: dup2 on fds; failure is ignored.
    unsafe {
        libc::dup2(old, new)
    };
}

/// Closes every fd from `low` up.
pub fn raw_close_from(low: c_int) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range on fds; ENOSYS on old kernels falls back below.
        if unsafe { libc::syscall(libc::SYS_close_range, low, c_int::MAX, 0) } == 0 {
            return;
        }
    }
    // SAFETY: getdtablesize has no preconditions.
    let max = unsafe { libc::getdtablesize() }.clamp(low, 65536);
    for fd in low..max {
        // SAFETY: closing fds, failures ignored.
        #[cfg(target_os = "linux")]
        unsafe {
            libc::syscall(libc::SYS_close, fd)
        };
        #[cfg(not(target_os = "linux"))]
        // SAFETY: as above.
        unsafe {
            libc::close(fd)
        };
    }
}
