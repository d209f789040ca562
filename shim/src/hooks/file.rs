//! Opens, renames, removals, links and working-directory changes.

use libc::{c_char, c_int, c_uint, mode_t, AT_FDCWD, FILE};
use roar_protocol::{access, Bytes, Message};

use super::{c_bytes, enosys, observe};
use crate::conn::State;
use crate::{paths, platform, real, sys, written};

/// Access bits of an `open` flags word. An `O_PATH` descriptor (Linux), or
/// an `O_EVTONLY` one (macOS: for kqueue notifications only), reads and
/// writes nothing: no access bits.
fn open_access(flags: c_int) -> u8 {
    #[cfg(target_os = "linux")]
    if flags & libc::O_PATH != 0 {
        return 0;
    }
    #[cfg(target_os = "macos")]
    if flags & libc::O_EVTONLY != 0 {
        return 0;
    }
    let mut a = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => access::READ,
        libc::O_WRONLY => access::WRITE,
        libc::O_RDWR => access::READ | access::WRITE,
        _ => 0,
    };
    for (bit, acc) in [
        (libc::O_CREAT, access::CREATE),
        (libc::O_TRUNC, access::TRUNCATE),
        (libc::O_APPEND, access::APPEND),
        (libc::O_DIRECTORY, access::DIRECTORY),
    ] {
        if flags & bit != 0 {
            a |= acc;
        }
    }
    a
}

const CREAT_ACCESS: u8 = access::WRITE | access::CREATE | access::TRUNCATE;

/// Access bits of an `fopen` mode string.
fn fopen_access(mode: &[u8]) -> u8 {
    let mut a = match mode.first() {
        Some(b'r') => access::READ,
        Some(b'w') => access::WRITE | access::CREATE | access::TRUNCATE,
        Some(b'a') => access::WRITE | access::CREATE | access::APPEND,
        _ => 0,
    };
    // Flags after the first letter stop at ',' (glibc's ",ccs=" suffix).
    if mode.iter().take_while(|&&c| c != b',').any(|&c| c == b'+') {
        a |= access::READ | access::WRITE;
    }
    a
}

/// Records an open of `path` relative to `dirfd` that returned `ret`.
#[inline]
fn opened(dirfd: c_int, path: *const c_char, access: u8, ret: c_int) {
    let result = if ret < 0 { -sys::errno() } else { ret };
    observe(|st| {
        // SAFETY: the caller's path argument, valid for the whole hook.
        let Some(p) = (unsafe { c_bytes(path) }) else {
            return;
        };
        send_open(st, dirfd, p, access, result);
    });
}

/// The Open event for `p` (relative to `dirfd`); changes go out at once.
fn send_open(st: &mut State, dirfd: c_int, p: &[u8], access: u8, result: c_int) {
    let path = paths::resolve(&st.cwd, &mut st.scratch[0], dirfd, p);
    let msg = Message::Open {
        path: Bytes::borrowed(path),
        access,
        result,
        t_ns: sys::now_ns(),
    };
    if writes(access, result) {
        st.out.push_now(&msg);
    } else {
        st.out.push(&msg);
    }
}

/// A successful open that may change the file: sent at once.
fn writes(access: u8, result: c_int) -> bool {
    result >= 0
        && access & (access::WRITE | access::CREATE | access::TRUNCATE | access::APPEND) != 0
}

/// One hook per open-family export: call the original, record the outcome.
macro_rules! open_hooks {
    ($($entry:ident => $real:ident($($arg:ident: $ty:ty),*) at $dirfd:expr, $path:ident, $access:expr;)*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $entry($($arg: $ty),*) -> c_int {
                let Some(real) = real::$real() else {
                    return enosys(-1);
                };
                // SAFETY: the caller's arguments, forwarded unchanged.
                let ret = unsafe { real($($arg),*) };
                let access = $access;
                if writes(access, ret) {
                    written::mark(ret);
                }
                opened($dirfd, $path, access, ret);
                ret
            }
        )*
    };
}

open_hooks! {
    roar_open => open(path: *const c_char, flags: c_int, mode: c_uint) at AT_FDCWD, path, open_access(flags);
    roar_openat => openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) at dirfd, path, open_access(flags);
    roar_creat => creat(path: *const c_char, mode: mode_t) at AT_FDCWD, path, CREAT_ACCESS;
}

// glibc's large-file and _FORTIFY_SOURCE variants.
#[cfg(target_os = "linux")]
open_hooks! {
    roar_open64 => open64(path: *const c_char, flags: c_int, mode: c_uint) at AT_FDCWD, path, open_access(flags);
    roar_openat64 => openat64(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) at dirfd, path, open_access(flags);
    roar_creat64 => creat64(path: *const c_char, mode: mode_t) at AT_FDCWD, path, CREAT_ACCESS;
    roar_open_2 => __open_2(path: *const c_char, flags: c_int) at AT_FDCWD, path, open_access(flags);
    roar_open64_2 => __open64_2(path: *const c_char, flags: c_int) at AT_FDCWD, path, open_access(flags);
    roar_openat_2 => __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) at dirfd, path, open_access(flags);
    roar_openat64_2 => __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) at dirfd, path, open_access(flags);
}

/// Records an fopen-style open that returned `fp`.
fn fopened(path: *const c_char, mode: *const c_char, fp: *mut FILE) {
    let err = sys::errno();
    observe(|st| {
        // SAFETY: the caller's arguments, valid for the whole hook.
        let (Some(p), Some(m)) = (unsafe { c_bytes(path) }, unsafe { c_bytes(mode) }) else {
            return;
        };
        let result = if fp.is_null() {
            -err
        } else {
            // SAFETY: a non-NULL result of fopen is a valid stream.
            unsafe { libc::fileno(fp) }
        };
        let access = fopen_access(m);
        if writes(access, result) {
            written::mark(result);
        }
        send_open(st, AT_FDCWD, p, access, result);
    });
}

/// The fopen family: call the original, record the outcome. freopen's
/// extra stream argument is passed through. The original opens through
/// other libc functions: see [`platform::whole_call`].
macro_rules! fopen_hooks {
    ($($entry:ident => $real:ident($($extra:ident: $ty:ty),*);)*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $entry(
                path: *const c_char,
                mode: *const c_char,
                $($extra: $ty),*
            ) -> *mut FILE {
                let Some(real) = real::$real() else {
                    return enosys(std::ptr::null_mut());
                };
                // SAFETY: the caller's arguments, forwarded unchanged.
                let fp = platform::whole_call(|| unsafe { real(path, mode, $($extra),*) });
                fopened(path, mode, fp);
                fp
            }
        )*
    };
}

fopen_hooks! {
    roar_fopen => fopen();
    roar_freopen => freopen(stream: *mut FILE);
}

#[cfg(target_os = "linux")]
fopen_hooks! {
    roar_fopen64 => fopen64();
    roar_freopen64 => freopen64(stream: *mut FILE);
}

#[cfg(target_os = "macos")]
fopen_hooks! {
    roar_fopen_extsn => fopen_extsn();
}

/// Records a successful rename.
fn renamed(fromfd: c_int, from: *const c_char, tofd: c_int, to: *const c_char) {
    observe(|st| {
        // SAFETY: the caller's path arguments, valid for the whole hook.
        let (Some(f), Some(t)) = (unsafe { c_bytes(from) }, unsafe { c_bytes(to) }) else {
            return;
        };
        let [a, b] = &mut st.scratch;
        st.out.push_now(&Message::Rename {
            from: Bytes::borrowed(paths::resolve(&st.cwd, a, fromfd, f)),
            to: Bytes::borrowed(paths::resolve(&st.cwd, b, tofd, t)),
            t_ns: sys::now_ns(),
        });
    });
}

/// Hooks whose effect is recorded only when the call succeeded (returned 0).
macro_rules! on_success_hooks {
    ($($entry:ident => $real:ident($($arg:ident: $ty:ty),*) records $record:expr;)*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $entry($($arg: $ty),*) -> c_int {
                let Some(real) = real::$real() else {
                    return enosys(-1);
                };
                // SAFETY: the caller's arguments, forwarded unchanged.
                let ret = unsafe { real($($arg),*) };
                if ret == 0 {
                    $record;
                }
                ret
            }
        )*
    };
}

on_success_hooks! {
    roar_rename => rename(from: *const c_char, to: *const c_char) records renamed(AT_FDCWD, from, AT_FDCWD, to);
    roar_renameat => renameat(fromfd: c_int, from: *const c_char, tofd: c_int, to: *const c_char) records renamed(fromfd, from, tofd, to);
    roar_unlink => unlink(path: *const c_char) records removed(AT_FDCWD, path);
    roar_unlinkat => unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) records removed(dirfd, path);
    roar_rmdir => rmdir(path: *const c_char) records removed(AT_FDCWD, path);
    roar_link => link(from: *const c_char, to: *const c_char) records linked(Some(AT_FDCWD), from, AT_FDCWD, to);
    roar_linkat => linkat(fromfd: c_int, from: *const c_char, tofd: c_int, to: *const c_char, flags: c_int) records linked(Some(fromfd), from, tofd, to);
    roar_symlink => symlink(target: *const c_char, to: *const c_char) records linked(None, target, AT_FDCWD, to);
    roar_symlinkat => symlinkat(target: *const c_char, tofd: c_int, to: *const c_char) records linked(None, target, tofd, to);
    roar_truncate => truncate(path: *const c_char, length: libc::off_t) records opened(AT_FDCWD, path, access::WRITE, 0);
}

#[cfg(target_os = "linux")]
on_success_hooks! {
    roar_truncate64 => truncate64(path: *const c_char, length: libc::off64_t) records opened(AT_FDCWD, path, access::WRITE, 0);
}

/// The mkstemp family: libc creates the file internally (through other libc
/// functions: see [`platform::whole_call`]); on success the template holds
/// its name.
macro_rules! mkstemp_hooks {
    ($($entry:ident => $real:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $entry(tmpl: *mut c_char, $($arg: $ty),*) -> c_int {
                let Some(real) = real::$real() else {
                    return enosys(-1);
                };
                // SAFETY: the caller's arguments, forwarded unchanged.
                let fd = platform::whole_call(|| unsafe { real(tmpl, $($arg),*) });
                if fd >= 0 {
                    // O_RDWR | O_CREAT | O_EXCL: a new file, open both ways.
                    written::mark(fd);
                    opened(AT_FDCWD, tmpl, CREAT_ACCESS | access::READ, fd);
                }
                fd
            }
        )*
    };
}

mkstemp_hooks! {
    roar_mkstemp => mkstemp();
    roar_mkostemp => mkostemp(flags: c_int);
    roar_mkstemps => mkstemps(suffixlen: c_int);
    roar_mkostemps => mkostemps(suffixlen: c_int, flags: c_int);
}

/// Records a successful rename that may have swapped the two paths
/// (`RENAME_EXCHANGE` on Linux, `RENAME_SWAP` on macOS).
fn renamed_or_swapped(
    fromfd: c_int,
    from: *const c_char,
    tofd: c_int,
    to: *const c_char,
    swapped: bool,
) {
    if swapped {
        // The two swapped contents: each path now holds what the other
        // held, as if linked from it (two renames would cancel out).
        linked(Some(fromfd), from, tofd, to);
        linked(Some(tofd), to, fromfd, from);
    } else {
        renamed(fromfd, from, tofd, to);
    }
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_renameat2(
    fromfd: c_int,
    from: *const c_char,
    tofd: c_int,
    to: *const c_char,
    flags: c_uint,
) -> c_int {
    let Some(real) = real::renameat2() else {
        return enosys(-1);
    };
    // SAFETY: the caller's arguments, forwarded unchanged.
    let ret = unsafe { real(fromfd, from, tofd, to, flags) };
    if ret == 0 {
        renamed_or_swapped(fromfd, from, tofd, to, flags & libc::RENAME_EXCHANGE != 0);
    }
    ret
}

#[cfg(target_os = "macos")]
#[no_mangle]
pub unsafe extern "C" fn roar_renamex_np(
    from: *const c_char,
    to: *const c_char,
    flags: c_uint,
) -> c_int {
    let Some(real) = real::renamex_np() else {
        return enosys(-1);
    };
    // SAFETY: the caller's arguments, forwarded unchanged.
    let ret = unsafe { real(from, to, flags) };
    if ret == 0 {
        renamed_or_swapped(AT_FDCWD, from, AT_FDCWD, to, flags & libc::RENAME_SWAP != 0);
    }
    ret
}

#[cfg(target_os = "macos")]
#[no_mangle]
pub unsafe extern "C" fn roar_renameatx_np(
    fromfd: c_int,
    from: *const c_char,
    tofd: c_int,
    to: *const c_char,
    flags: c_uint,
) -> c_int {
    let Some(real) = real::renameatx_np() else {
        return enosys(-1);
    };
    // SAFETY: the caller's arguments, forwarded unchanged.
    let ret = unsafe { real(fromfd, from, tofd, to, flags) };
    if ret == 0 {
        renamed_or_swapped(fromfd, from, tofd, to, flags & libc::RENAME_SWAP != 0);
    }
    ret
}

/// Records a successful unlink or rmdir.
fn removed(dirfd: c_int, path: *const c_char) {
    observe(|st| {
        // SAFETY: the caller's path argument, valid for the whole hook.
        let Some(p) = (unsafe { c_bytes(path) }) else {
            return;
        };
        let path = paths::resolve(&st.cwd, &mut st.scratch[0], dirfd, p);
        st.out.push_now(&Message::Unlink {
            path: Bytes::borrowed(path),
            t_ns: sys::now_ns(),
        });
    });
}

/// Records a successful link. A symlink's `from` is its target text as
/// given (`fromfd` is `None`); a hard link's is resolved like `to`.
fn linked(fromfd: Option<c_int>, from: *const c_char, tofd: c_int, to: *const c_char) {
    observe(|st| {
        // SAFETY: the caller's path arguments, valid for the whole hook.
        let (Some(f), Some(t)) = (unsafe { c_bytes(from) }, unsafe { c_bytes(to) }) else {
            return;
        };
        let [a, b] = &mut st.scratch;
        let from = match fromfd {
            Some(fd) => paths::resolve(&st.cwd, a, fd, f),
            None => f,
        };
        st.out.push_now(&Message::Link {
            from: Bytes::borrowed(from),
            to: Bytes::borrowed(paths::resolve(&st.cwd, b, tofd, t)),
            symbolic: fromfd.is_none(),
            t_ns: sys::now_ns(),
        });
    });
}

/// After a successful chdir/fchdir: refresh the cached cwd and report it.
fn changed_dir() {
    observe(|st| {
        st.cwd.refresh();
        st.out.push(&Message::Chdir {
            path: Bytes::borrowed(st.cwd.get()),
            t_ns: sys::now_ns(),
        });
    });
}

#[no_mangle]
pub unsafe extern "C" fn roar_chdir(path: *const c_char) -> c_int {
    let Some(real) = real::chdir() else {
        return enosys(-1);
    };
    // SAFETY: the caller's arguments, forwarded unchanged.
    let ret = unsafe { real(path) };
    if ret == 0 {
        changed_dir();
    }
    ret
}

#[no_mangle]
pub unsafe extern "C" fn roar_fchdir(fd: c_int) -> c_int {
    let Some(real) = real::fchdir() else {
        return enosys(-1);
    };
    // SAFETY: the caller's arguments, forwarded unchanged.
    let ret = unsafe { real(fd) };
    if ret == 0 {
        changed_dir();
    }
    ret
}
