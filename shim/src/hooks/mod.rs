//! The Rust side of every export in `c/exports.c`. Each hook calls the
//! original first and records afterwards through [`observe`], which keeps
//! the program's view intact: errno restored, panics contained, nothing done
//! when passive or when the thread is already inside the shim.

pub mod fd;
pub mod file;
pub mod process;

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::c_char;

use crate::conn::{self, State};
use crate::{guard, sys};

/// Runs recording work `f` under the connection lock, unless passive or
/// re-entered. errno is the same after as before.
#[inline]
pub fn observe(f: impl FnOnce(&mut State)) {
    observe_with(true, f);
}

/// [`observe`] that skips a forked child which has not connected yet
/// (its exec or spawn is told by the new image itself).
#[inline]
pub fn observe_connected(f: impl FnOnce(&mut State)) {
    observe_with(false, f);
}

#[inline]
fn observe_with(connect: bool, f: impl FnOnce(&mut State)) {
    if !conn::active() {
        return;
    }
    let Some(_entered) = guard::enter() else {
        return;
    };
    let saved = sys::errno();
    let _ = catch_unwind(AssertUnwindSafe(|| conn::record(connect, f)));
    sys::set_errno(saved);
}

/// The result of a missing original: `ENOSYS`.
#[cold]
pub fn enosys<T>(ret: T) -> T {
    sys::set_errno(libc::ENOSYS);
    ret
}

/// The bytes of a C string, `None` for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for `'a`.
#[inline]
pub unsafe fn c_bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL, NUL-terminated by the contract above.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}
