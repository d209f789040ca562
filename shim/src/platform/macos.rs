//! macOS. `libroar.dylib` is loaded with `DYLD_INSERT_LIBRARIES` and replaces
//! libc functions through dyld's interposing: `c/interpose_macos.c` lists
//! (replacement, original) pairs in a `__DATA,__interpose` section, and dyld
//! binds every other image's references to an original to its replacement.
//! References made from this library itself keep the originals (two-level
//! namespace), so the originals are the plain libc symbols ([`real`]) and the
//! shim's own calls never land in its hooks. What can land there is libSystem
//! calling itself across its sub-libraries (libsystem_c's `fopen` opening
//! through libsystem_kernel's `open`), hence [`whole_call`].
//!
//! System Integrity Protection: the loader ignores and drops `DYLD_*` for
//! protected programs, so [`untraceable`] reports them at their exec.

pub mod real;

use libc::{c_char, c_int};
use roar_protocol::{sip, UntracedReason};

use crate::paths::PATH_MAX;
use crate::{guard, sys};

/// The library's file name, for messages.
pub const LIB_NAME: &str = "libroar.dylib";

/// This thread's errno.
#[inline]
pub fn errno_slot() -> *mut c_int {
    // SAFETY: __error returns this thread's errno slot, always valid.
    unsafe { libc::__error() }
}

/// Flags for every send on the shim's socket. macOS has no `MSG_NOSIGNAL`:
/// the socket carries `SO_NOSIGPIPE` instead (see [`stream_socket`]).
pub const SEND_FLAGS: c_int = 0;

/// A close-on-exec Unix stream socket that never raises SIGPIPE, or -1 with
/// errno set.
pub fn stream_socket() -> c_int {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return fd;
    }
    // No SOCK_CLOEXEC on macOS: FD_CLOEXEC right away (`sys::move_high`
    // then moves the socket with F_DUPFD_CLOEXEC).
    let on: c_int = 1;
    // SAFETY: fcntl and setsockopt on the fd just made; `on` is a c_int of
    // the size passed.
    let ok = unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0
            && libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&on as *const c_int).cast(),
                std::mem::size_of::<c_int>() as libc::socklen_t,
            ) == 0
    };
    if !ok {
        // A socket whose sends could raise SIGPIPE in the program is no use.
        let e = sys::errno();
        sys::close(fd);
        sys::set_errno(e);
        return -1;
    }
    fd
}

/// The inode behind `fd`, or `None` when the fd is closed.
pub fn inode(fd: c_int) -> Option<u64> {
    // SAFETY: a zeroed stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable; fstat is not interposed.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

/// The path `fd` names (`F_GETPATH`: symlinks resolved, firmlinks shown as
/// the user sees them) into `out`; the length, or 0 when the fd does not
/// name a path.
pub fn fd_path(fd: c_int, out: &mut [u8]) -> usize {
    if fd < 0 {
        return 0;
    }
    // F_GETPATH writes up to MAXPATHLEN (PATH_MAX) bytes, whatever `out` holds.
    let mut buf = [0u8; PATH_MAX];
    // SAFETY: `buf` is writable for MAXPATHLEN bytes, as F_GETPATH requires.
    if unsafe { libc::fcntl(fd, libc::F_GETPATH, buf.as_mut_ptr()) } != 0 {
        return 0;
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if n == 0 || n > out.len() || buf[0] != b'/' {
        return 0;
    }
    out[..n].copy_from_slice(&buf[..n]);
    n
}

/// The running program's path into `out` (the kernel's, symlinks resolved,
/// as Linux's `/proc/self/exe`); the length, or 0 when unknown. `argv` is
/// Linux's hint and unused here.
pub fn exe_path(out: &mut [u8], _argv: &[Vec<u8>]) -> usize {
    // proc_pidpath wants room for PROC_PIDPATHINFO_MAXSIZE (4 * MAXPATHLEN).
    let mut buf = [0u8; 4 * PATH_MAX];
    // SAFETY: plain getpid; `buf` is writable for the length passed.
    let n =
        unsafe { libc::proc_pidpath(libc::getpid(), buf.as_mut_ptr().cast(), buf.len() as u32) };
    let n = usize::try_from(n).unwrap_or(0);
    if n == 0 || n > out.len() {
        return 0;
    }
    out[..n].copy_from_slice(&buf[..n]);
    n
}

/// The program's path, for [`crate::hello::is_roar_itself`].
pub fn program_name(out: &mut [u8]) -> usize {
    exe_path(out, &[])
}

/// The address of the process's `environ` variable. A dylib cannot name the
/// main program's `environ`; `_NSGetEnviron` is the documented way (and the
/// one libSystem's own `execvp`, `system` and `popen` read).
#[inline]
pub fn environ() -> *mut *const *const c_char {
    // SAFETY: plain call; the address it returns is valid for the process's life.
    unsafe { libc::_NSGetEnviron() }.cast()
}

/// Whether the NUL-terminated `path` is executable, as execvp checks it.
pub fn is_executable(path: &[u8]) -> bool {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: a NUL-terminated path; access is not interposed.
    unsafe { libc::access(path.as_ptr().cast(), libc::X_OK) == 0 }
}

/// Ends the process at once when libc has no exit function to call (never
/// the case here: [`real`] always has `_exit`).
pub fn exit_group(status: c_int) -> ! {
    // SAFETY: this library's own reference to _exit binds to the original,
    // which never returns.
    unsafe { libc::_exit(status) }
}

/// Calls `f`, a libc function that may do its work through other interposed
/// functions (libsystem_c's `fopen` and `mkstemp` opening through
/// libsystem_kernel's `open`, `execvp` trying `execve` along PATH), with the
/// thread marked as inside the shim: the inner calls pass through
/// unrecorded, and the hook around `f` records the call once.
pub fn whole_call<R>(f: impl FnOnce() -> R) -> R {
    let _inside = guard::enter();
    f()
}

/// Why an exec of `path` escapes the inserted library: `Sip` when the
/// program, or its script's `#!` interpreter, is SIP-protected (judged with
/// symlinks resolved); `Setuid` when dyld runs it restricted; `None` for
/// ordinary programs. Reads the file with calls that are not interposed.
pub fn untraceable(path: &[u8]) -> Option<UntracedReason> {
    let Some(file) = Opened::new(path) else {
        // Unreadable (execute-only, or gone): judge the path as given.
        return sip::is_protected(path).then_some(UntracedReason::Sip);
    };
    let mut buf = [0u8; PATH_MAX];
    if sip::is_protected(file.canonical(&mut buf, path)) {
        return Some(UntracedReason::Sip);
    }
    let mut head = [0u8; sip::SHEBANG_MAX];
    // SAFETY: `head` is writable for its length; pread is not interposed.
    let n = unsafe { libc::pread(file.0, head.as_mut_ptr().cast(), head.len(), 0) };
    let head = &head[..usize::try_from(n).unwrap_or(0)];
    if sip::interpreter(head).is_some_and(protected) {
        return Some(UntracedReason::Sip);
    }
    restricted(file.0).then_some(UntracedReason::Setuid)
}

/// Whether the program at `path` is SIP-protected: by its path with
/// symlinks resolved when it can be opened, as given otherwise.
fn protected(path: &[u8]) -> bool {
    let mut buf = [0u8; PATH_MAX];
    match Opened::new(path) {
        Some(file) => sip::is_protected(file.canonical(&mut buf, path)),
        None => sip::is_protected(path),
    }
}

/// dyld's restricted mode for set-id programs: the set-id bits would change
/// the effective user or group, on a mount that honours them.
fn restricted(fd: c_int) -> bool {
    // SAFETY: a zeroed stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable; fstat is not interposed.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    // SAFETY: plain getuid/getgid calls.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let setid = (st.st_mode & libc::S_ISUID != 0 && st.st_uid != uid)
        || (st.st_mode & libc::S_ISGID != 0 && st.st_gid != gid);
    if !setid {
        return false;
    }
    // SAFETY: a zeroed statvfs is a valid value to be overwritten.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fs` is writable; fstatvfs is not interposed.
    let nosuid = unsafe { libc::fstatvfs(fd, &mut fs) } == 0 && fs.f_flag & libc::ST_NOSUID != 0;
    !nosuid
}

/// A file the shim opened for itself to read; closed when dropped.
struct Opened(c_int);

impl Opened {
    /// Opens `path` (relative paths from the current directory, as exec
    /// resolves them) for reading.
    fn new(path: &[u8]) -> Option<Opened> {
        if path.is_empty() || path.len() >= PATH_MAX || path.contains(&0) {
            return None;
        }
        let mut cpath = [0u8; PATH_MAX + 1];
        cpath[..path.len()].copy_from_slice(path);
        let open = real::open()?;
        // SAFETY: a NUL-terminated path in a local buffer; no mode argument
        // without O_CREAT. O_NONBLOCK: a FIFO named as a program must not
        // hang the exec.
        let fd = unsafe {
            open(
                cpath.as_ptr().cast(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        (fd >= 0).then_some(Opened(fd))
    }

    /// The file's path with symlinks resolved, in `buf`; `given` when the
    /// system cannot tell.
    fn canonical<'a>(&self, buf: &'a mut [u8; PATH_MAX], given: &'a [u8]) -> &'a [u8] {
        let n = fd_path(self.0, buf);
        if n > 0 {
            &buf[..n]
        } else {
            given
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        sys::close(self.0);
    }
}
