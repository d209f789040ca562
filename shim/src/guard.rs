//! Per-thread recursion guard: while a thread runs the shim's own recording
//! work, hooks it reaches again (from a signal handler, an atfork handler, or
//! libc calling an export) pass straight through.
//!
//! The flag is a `const`-initialised `Cell<bool>` with no destructor, so using
//! it never allocates nor registers a TLS destructor.

use std::cell::Cell;

thread_local! {
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Proof that this thread entered the shim; leaving clears the flag.
pub struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        set_busy(false);
    }
}

/// Marks this thread busy, or `None` when it already is.
#[inline]
pub fn enter() -> Option<Entered> {
    BUSY.with(|b| {
        if b.get() {
            None
        } else {
            b.set(true);
            Some(Entered(()))
        }
    })
}

#[inline]
pub fn busy() -> bool {
    BUSY.with(Cell::get)
}

/// For handlers whose enter and leave are separate calls (atfork).
#[inline]
pub fn set_busy(v: bool) {
    BUSY.with(|b| b.set(v));
}
