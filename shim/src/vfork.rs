//! vfork kept as vfork (Linux). dash runs every command with vfork and
//! Python's subprocess uses it too; turning it into fork made each of their
//! children copy the parent's page tables and fault in what it touched
//! before exec (perf: the shell's kernel time more than doubled).
//!
//! The exported `vfork` (c/exports.c) is a few instructions of assembly: it
//! calls [`roar_vfork_enter`] and jumps to libc's vfork with the caller's
//! own return address, as a vfork wrapper must (the child returns through
//! the parent's stack frame, so no frame of ours may sit in between).
//!
//! The child then runs on the parent's memory, this thread's
//! thread-locals included, until it execs or exits. Everything the shim
//! shares with the parent (connection, buffer, lock, working directory,
//! write marks) is the parent's and must stay untouched, so a vfork child
//! is passive: [`in_child`] is what the hooks ask. Exec hooks still repair
//! the environment (on the stack: heap memory left behind by an exec would
//! leak in the parent) and report untraceable programs on a connection of
//! the child's own.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Some thread of this process called vfork while tracing: until then no
/// hook pays even the thread-local read.
static EVER: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread called vfork since its last hook: it may be the child.
    static CALLED: Cell<bool> = const { Cell::new(false) };
}

/// The process whose memory this is (set when tracing starts and in a
/// forked child); a vfork child's pid differs.
static OWNER: AtomicI32 = AtomicI32::new(0);

/// This process owns its memory: at the start of tracing, and in a forked
/// child (whose copy of a vfork mark is its parent's business).
pub fn set_owner() {
    // SAFETY: plain getpid call.
    OWNER.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    CALLED.with(|c| c.set(false));
}

/// Called by the exported `vfork` before it jumps to libc's: marks the
/// thread and returns the address to jump to (the fork-based hook if libc
/// had no vfork).
#[cfg(target_os = "linux")]
#[no_mangle]
pub extern "C" fn roar_vfork_enter() -> usize {
    if crate::conn::tracing() {
        EVER.store(true, Ordering::Relaxed);
        CALLED.with(|c| c.set(true));
    }
    let fork_hook: unsafe extern "C" fn() -> libc::pid_t = crate::hooks::process::roar_vfork;
    match crate::real::vfork() {
        Some(vfork) => vfork as usize,
        None => fork_hook as usize,
    }
}

/// Whether this is the child of a vfork, still sharing its parent's memory.
/// Costs one thread-local read, plus a getpid on the first hook after a
/// vfork on this thread (where the parent, resumed, clears the mark).
#[inline]
pub fn in_child() -> bool {
    if !EVER.load(Ordering::Relaxed) {
        return false;
    }
    CALLED.with(|c| {
        if !c.get() {
            return false;
        }
        // SAFETY: plain getpid call (a system call: glibc caches no pid).
        if unsafe { libc::getpid() } != OWNER.load(Ordering::Relaxed) {
            return true;
        }
        c.set(false);
        false
    })
}
