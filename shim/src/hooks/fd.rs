//! Keeps the shim's own socket alive when the program closes "all" fds or
//! dup2s over it. To the program that fd does not exist: closing it alone
//! fails with `EBADF`, as it would without the shim. (`close_range`,
//! `closefrom` and `dup3` are Linux's; macOS has `close` and `dup2`.)

use std::panic::catch_unwind;

use libc::c_int;
#[cfg(target_os = "linux")]
use libc::c_uint;

use libc::FILE;
use roar_protocol::Message;

use super::{enosys, observe_connected};
use crate::{conn, guard, real, sys, written};

/// Our socket fd when it lies in `first..=last` (and is still ours).
#[cfg(target_os = "linux")]
fn own_in(first: c_uint, last: c_uint) -> Option<c_uint> {
    let own = conn::own_fd();
    let own_u = c_uint::try_from(own).ok()?;
    (first <= own_u && own_u <= last && conn::claims(own)).then_some(own_u)
}

#[no_mangle]
pub unsafe extern "C" fn roar_close(fd: c_int) -> c_int {
    if conn::claims(fd) {
        sys::set_errno(libc::EBADF);
        return -1;
    }
    let Some(real) = real::close() else {
        return enosys(-1);
    };
    let was_written = written::take(fd);
    // SAFETY: the caller's argument, forwarded unchanged.
    let ret = unsafe { real(fd) };
    if was_written && ret == 0 {
        closed(fd);
    }
    ret
}

/// Tells the collector that `fd`, opened for writing, was closed. Only a
/// hint, so a forked child that has not connected stays unconnected.
fn closed(fd: c_int) {
    observe_connected(|st| {
        st.out.push_now(&Message::Close {
            fd,
            t_ns: sys::now_ns(),
        })
    });
}

#[no_mangle]
pub unsafe extern "C" fn roar_fclose(fp: *mut FILE) -> c_int {
    let Some(real) = real::fclose() else {
        return enosys(libc::EOF);
    };
    let fd = if fp.is_null() {
        -1
    } else {
        // SAFETY: the caller's stream, still open.
        unsafe { libc::fileno(fp) }
    };
    let was_written = written::take(fd);
    // SAFETY: the caller's argument, forwarded unchanged.
    let ret = unsafe { real(fp) };
    if was_written && ret == 0 {
        closed(fd);
    }
    ret
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let Some(real) = real::close_range() else {
        return enosys(-1);
    };
    if flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
        written::forget_range(first, last);
    }
    let Some(own) = own_in(first, last) else {
        // SAFETY: the caller's arguments, forwarded unchanged.
        return unsafe { real(first, last, flags) };
    };
    // The same range minus our fd, in two calls.
    if own > first {
        // SAFETY: a sub-range of the caller's range, same flags.
        let r = unsafe { real(first, own - 1, flags) };
        if r < 0 {
            return r;
        }
    }
    if own < last {
        // SAFETY: a sub-range of the caller's range, same flags.
        return unsafe { real(own + 1, last, flags) };
    }
    0
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_closefrom(lowfd: c_int) {
    let Some(real) = real::closefrom() else {
        sys::set_errno(libc::ENOSYS);
        return;
    };
    let low = c_uint::try_from(lowfd).unwrap_or(0);
    written::forget_range(low, c_uint::MAX);
    let Some(own) = own_in(low, c_uint::MAX) else {
        // SAFETY: the caller's argument, forwarded unchanged.
        return unsafe { real(lowfd) };
    };
    let saved = sys::errno();
    if own > low {
        let ranged = real::close_range().is_some_and(|close_range| {
            // SAFETY: closes `low..own`, which the caller asked to close.
            unsafe { close_range(low, own - 1, 0) == 0 }
        });
        if !ranged {
            for fd in low..own {
                sys::close(fd as c_int);
            }
        }
    }
    sys::set_errno(saved);
    // SAFETY: closes everything above our fd, which the caller asked for.
    unsafe { real(own as c_int + 1) }
}

/// Before `newfd` is replaced: if it is our socket, move the socket away.
fn spare(oldfd: c_int, newfd: c_int) {
    if newfd >= 0 && newfd != oldfd && newfd == conn::own_fd() && !guard::busy() {
        let saved = sys::errno();
        let _ = catch_unwind(|| conn::evacuate(newfd));
        sys::set_errno(saved);
    }
}

#[no_mangle]
pub unsafe extern "C" fn roar_dup2(oldfd: c_int, newfd: c_int) -> c_int {
    let Some(real) = real::dup2() else {
        return enosys(-1);
    };
    spare(oldfd, newfd);
    let was_written = oldfd != newfd && written::take(newfd);
    // SAFETY: the caller's arguments, forwarded unchanged.
    let ret = unsafe { real(oldfd, newfd) };
    replaced(was_written, ret, newfd);
    ret
}

/// `newfd`, replaced by a dup, was open for writing: as good as closed.
fn replaced(was_written: bool, ret: c_int, newfd: c_int) {
    if was_written && ret >= 0 {
        closed(newfd);
    }
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    let Some(real) = real::dup3() else {
        return enosys(-1);
    };
    spare(oldfd, newfd);
    let was_written = oldfd != newfd && written::take(newfd);
    // SAFETY: the caller's arguments, forwarded unchanged.
    let ret = unsafe { real(oldfd, newfd, flags) };
    replaced(was_written, ret, newfd);
    ret
}
