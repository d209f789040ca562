//! Linux glibc. The exported libc symbols are in `c/exports.c` (limited by
//! `c/exports.map`); the originals are found with `dlsym(RTLD_NEXT)` in
//! `crate::real`. Where it matters the shim uses raw system calls, which no
//! preloaded library can intercept.

use libc::{c_char, c_int};
use roar_protocol::UntracedReason;

use crate::paths::PATH_MAX;
use crate::sys;

/// The library's file name, for messages.
pub const LIB_NAME: &str = "libroar.so";

/// This thread's errno.
#[inline]
pub fn errno_slot() -> *mut c_int {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { libc::__errno_location() }
}

/// Flags for every send on the shim's socket: never raise SIGPIPE.
pub const SEND_FLAGS: c_int = libc::MSG_NOSIGNAL;

/// A close-on-exec Unix stream socket, or -1 with errno set.
pub fn stream_socket() -> c_int {
    // SAFETY: plain socket(2) call.
    unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) }
}

/// The inode behind `fd` (raw fstat, not a hooked call), or `None` when the
/// fd is closed.
pub fn inode(fd: c_int) -> Option<u64> {
    // SAFETY: a zeroed stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable; raw fstat.
    let r = unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) };
    (r == 0).then_some(st.st_ino)
}

/// `readlink` of `/proc/self/fd/<fd>` into `out`; the length, or 0 when the
/// fd does not name a path.
pub fn fd_path(fd: c_int, out: &mut [u8]) -> usize {
    if fd < 0 {
        return 0;
    }
    let mut link = [0u8; 32];
    let prefix = b"/proc/self/fd/";
    link[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    let mut digits = [0u8; 10];
    let mut d = 0;
    let mut v = fd as u32;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in (0..d).rev() {
        link[n] = digits[i];
        n += 1;
    }
    sys::readlink(&link[..=n], out)
}

/// The running program's path into `out`; the length, or 0 when unknown.
/// The path exec was given (AT_EXECFN, no system call) when it is the image
/// the kernel loaded: absolute, not a descriptor's name, and not a script
/// or binfmt_misc file, for which the kernel runs an interpreter with the
/// file's path as `argv[1]` or `argv[2]`. Its symlinks are the collector's
/// to resolve. Otherwise `/proc/self/exe`, ~25 µs in a fresh process.
pub fn exe_path(out: &mut [u8], argv: &[Vec<u8>]) -> usize {
    let mut name = [0u8; PATH_MAX];
    let n = program_name(&mut name);
    let name = &name[..n];
    let is_image = name.first() == Some(&b'/')
        && n < PATH_MAX
        && !name.starts_with(b"/dev/fd/")
        && !name.starts_with(b"/proc/")
        && !argv.iter().skip(1).take(2).any(|a| a == name);
    if is_image && n <= out.len() {
        out[..n].copy_from_slice(name);
        return n;
    }
    sys::readlink(b"/proc/self/exe\0", out)
}

/// The path the program was started by (as given to exec: maybe relative,
/// maybe a symlink or a script) into `out`; the length, or 0.
pub fn program_name(out: &mut [u8]) -> usize {
    // SAFETY: getauxval reads the auxiliary vector; AT_EXECFN is the
    // address of a NUL-terminated string there, or 0.
    let p = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if p.is_null() {
        return 0;
    }
    // SAFETY: non-NULL, NUL-terminated, alive for the whole process.
    let name = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
    let n = name.len().min(out.len());
    out[..n].copy_from_slice(&name[..n]);
    n
}

mod glibc {
    use libc::c_char;

    extern "C" {
        pub static mut environ: *const *const c_char;
    }
}

/// The address of the process's `environ` variable.
#[inline]
pub fn environ() -> *mut *const *const c_char {
    std::ptr::addr_of_mut!(glibc::environ)
}

/// Whether the NUL-terminated `path` is executable, as execvp checks it.
pub fn is_executable(path: &[u8]) -> bool {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: a NUL-terminated path; raw faccessat, as execvp checks.
    unsafe {
        libc::syscall(
            libc::SYS_faccessat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::X_OK,
            0,
        ) == 0
    }
}

/// Why an exec of `path` escapes the preload library (statically linked,
/// set-id, Go), or `None`.
pub fn untraceable(path: &[u8]) -> Option<UntracedReason> {
    crate::elf::untraceable(path)
}

/// Ends the process at once when libc has no exit function to call.
pub fn exit_group(status: c_int) -> ! {
    // SAFETY: exit_group never returns.
    unsafe { libc::syscall(libc::SYS_exit_group, status) };
    std::process::abort()
}

/// Calls `f`, a libc function that does its work through other libc
/// functions. glibc calls its internal aliases, never its exported symbols,
/// so nothing inside reaches the hooks: nothing to do.
#[inline(always)]
pub fn whole_call<R>(f: impl FnOnce() -> R) -> R {
    f()
}
