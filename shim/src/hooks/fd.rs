//! Keeps the shim's own socket alive when the program closes "all" fds or
//! dup2s over it. To the program that fd does not exist: closing it alone
//! fails with `EBADF`, as it would without the shim.

use std::panic::catch_unwind;

use libc::{c_int, c_uint};

use super::enosys;
use crate::{conn, guard, real, sys};

/// Our socket fd when it lies in `first..=last` (and is still ours).
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
    // SAFETY: the caller's argument, forwarded unchanged.
    unsafe { real(fd) }
}

#[no_mangle]
pub unsafe extern "C" fn roar_close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let Some(real) = real::close_range() else {
        return enosys(-1);
    };
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

#[no_mangle]
pub unsafe extern "C" fn roar_closefrom(lowfd: c_int) {
    let Some(real) = real::closefrom() else {
        sys::set_errno(libc::ENOSYS);
        return;
    };
    let low = c_uint::try_from(lowfd).unwrap_or(0);
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
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { real(oldfd, newfd) }
}

#[no_mangle]
pub unsafe extern "C" fn roar_dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    let Some(real) = real::dup3() else {
        return enosys(-1);
    };
    spare(oldfd, newfd);
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { real(oldfd, newfd, flags) }
}
