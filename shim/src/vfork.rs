//! vfork kept as vfork (Linux). dash runs every command with vfork and
//! Python's subprocess uses it too; turning it into fork made each of their
//! children copy the parent's page tables and fault in what it touched
//! before exec (perf: the shell's kernel time more than doubled).
//!
//! The exported `vfork` (c/exports.c, x86-64) is a few instructions of
//! assembly: it calls [`roar_vfork_enter`], makes the system call with the
//! caller's return address in a register, as glibc's vfork does (the child
//! returns through the parent's stack frame, so no frame of ours may sit in
//! between), and in the parent calls [`roar_vfork_leave`]. Elsewhere vfork
//! still becomes fork.
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
    /// A vfork of this thread is under way (set on entry, cleared in the
    /// parent once it returned): a process running this memory with another
    /// pid is the child.
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

/// Called by the exported `vfork` (x86-64 Linux) before its system call:
/// marks the thread.
#[no_mangle]
pub extern "C" fn roar_vfork_enter() {
    if crate::conn::tracing() {
        EVER.store(true, Ordering::Relaxed);
        CALLED.with(|c| c.set(true));
    }
}

/// Called by the exported `vfork` in the parent once the system call
/// returned (the child has exec'd or exited by then), or after it failed:
/// clears the mark and turns `-errno` into errno. A vfork child whose own
/// vfork returned keeps the mark: it still runs on its parent's memory.
#[no_mangle]
pub extern "C" fn roar_vfork_leave(ret: libc::c_long) -> libc::c_long {
    CALLED.with(|c| {
        // SAFETY: plain getpid call.
        if c.get() && unsafe { libc::getpid() } == OWNER.load(Ordering::Relaxed) {
            c.set(false);
        }
    });
    if (-4095..0).contains(&ret) {
        crate::sys::set_errno(-ret as libc::c_int);
        return -1;
    }
    ret
}

/// Whether this is the child of a vfork, still sharing its parent's memory.
/// Costs one atomic read until this process first vforks while tracing;
/// then a thread-local read, plus a getpid between a vfork's start and its
/// return in the parent (the window the child runs in).
#[inline]
pub fn in_child() -> bool {
    if !EVER.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: plain getpid call (a system call: glibc caches no pid).
    CALLED.with(|c| c.get()) && unsafe { libc::getpid() } != OWNER.load(Ordering::Relaxed)
}
