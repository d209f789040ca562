//! Recognises, at exec, executables the preload library cannot trace (the
//! verdict is `roar_protocol::exe`'s). Reads the file with raw system calls,
//! so nothing here reaches the hooks.

use libc::c_int;
use roar_protocol::{exe, UntracedReason};

/// Why `path` (opened relative to the current directory) escapes tracing,
/// or `None` when it is an ordinary dynamically linked program or unknown.
pub fn untraceable(path: &[u8]) -> Option<UntracedReason> {
    let mut cpath = [0u8; crate::paths::PATH_MAX + 1];
    if path.len() >= crate::paths::PATH_MAX || path.contains(&0) {
        return None;
    }
    cpath[..path.len()].copy_from_slice(path);
    // SAFETY: a NUL-terminated path in a local buffer; raw openat, not the hook.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            cpath.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    } as c_int;
    if fd < 0 {
        return None;
    }
    let reason = untraceable_fd(fd);
    // SAFETY: closing the fd opened above, with the raw call.
    unsafe { libc::syscall(libc::SYS_close, fd) };
    reason
}

/// As [`untraceable`], for an open executable (fexecve).
pub fn untraceable_fd(fd: c_int) -> Option<UntracedReason> {
    // SAFETY: a zeroed stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable; raw fstat.
    if unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) } != 0 {
        return None;
    }
    let mut head = [0u8; exe::HEAD_LEN];
    let n = pread(fd, &mut head, 0);
    let secure = secure_exec(&st) && !on_nosuid_mount(fd);
    exe::untraceable(&head[..n], secure, |note| {
        let mut buf = vec![0u8; (note.size as usize).min(4096)];
        let got = pread(fd, &mut buf, note.offset);
        buf.truncate(got);
        buf
    })
}

/// The kernel runs this image in secure mode (AT_SECURE): its set-id bits
/// would change the effective user or group.
fn secure_exec(st: &libc::stat) -> bool {
    // SAFETY: plain getuid/getgid calls, made only for a set-id file.
    (st.st_mode & libc::S_ISUID != 0 && st.st_uid != unsafe { libc::getuid() })
        || (st.st_mode & libc::S_ISGID != 0 && st.st_gid != unsafe { libc::getgid() })
}

/// On a `nosuid` mount the kernel ignores set-id bits: no secure mode.
fn on_nosuid_mount(fd: c_int) -> bool {
    // SAFETY: a zeroed statvfs is a valid value to be overwritten.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fs` is writable; fstatvfs is not one of the hooked calls.
    let ok = unsafe { libc::fstatvfs(fd, &mut fs) } == 0;
    ok && fs.f_flag & libc::ST_NOSUID != 0
}

fn pread(fd: c_int, buf: &mut [u8], offset: u64) -> usize {
    // SAFETY: `buf` is writable for its length; raw pread64.
    let n = unsafe {
        libc::syscall(
            libc::SYS_pread64,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            offset as libc::off_t,
        )
    };
    usize::try_from(n).unwrap_or(0)
}
