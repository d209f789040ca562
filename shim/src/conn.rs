//! The process's one connection to the collector and its 64 KiB event buffer,
//! behind a tiny spinlock.
//!
//! Any send error other than a stolen fd makes the process passive for good:
//! the traced program never notices. A stolen fd (`EBADF`: the program closed
//! it by a route the fd hooks cannot see) is replaced by a fresh connection
//! that introduces itself again.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use libc::c_int;
use roar_protocol::{encode, encode_into, Message};

use crate::paths::{Cwd, SCRATCH_LEN};
use crate::{env, guard, hello, sys, vfork};

pub const BUF_LEN: usize = 64 * 1024;
/// Buffered events older than this go out with the next event, so a
/// long-running process streams and one killed by a signal loses little.
const MAX_AGE_NS: u64 = 10_000_000;

pub struct Out {
    fd: c_int,
    /// Who the connection belongs to: the socket's inode and the process
    /// that connected it. The fd number alone can come to name a file of
    /// the program's (closed by a raw syscall, reused), or be inherited by
    /// a child forked without atfork handlers (raw clone).
    ino: u64,
    pid: c_int,
    len: usize,
    /// CLOCK_MONOTONIC time the oldest buffered frame was seen; 0 if empty.
    since: u64,
    buf: [u8; BUF_LEN],
}

/// Everything the recording path touches, guarded by one lock.
pub struct State {
    pub out: Out,
    pub cwd: Cwd,
    /// Two path buffers, for the two paths of a rename or link.
    pub scratch: [[u8; SCRATCH_LEN]; 2],
}

struct Shared {
    lock: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only reached through `state_mut`, whose callers hold
// `lock` (or run while the process is single-threaded: constructor, forked
// child).
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    lock: AtomicBool::new(false),
    state: UnsafeCell::new(State {
        out: Out {
            fd: -1,
            ino: 0,
            pid: 0,
            len: 0,
            since: 0,
            buf: [0; BUF_LEN],
        },
        cwd: Cwd::new(),
        scratch: [[0; SCRATCH_LEN]; 2],
    }),
};

/// False while passive: every hook checks this one relaxed load first.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The socket fd, readable without the lock by the close/dup hooks.
static OWN_FD: AtomicI32 = AtomicI32::new(-1);
/// Set once the destructor ran: events from later destructors go out at once.
static WRITE_THROUGH: AtomicBool = AtomicBool::new(false);
/// The atfork prepare handler took the lock.
static PREPARED: AtomicBool = AtomicBool::new(false);
/// No connection yet (a forked child) or any more (ours was taken): connect
/// with the next event. A forked child that only execs so costs no
/// connection (the new image introduces itself with the same pid and parent).
static PENDING: AtomicBool = AtomicBool::new(false);

/// Whether hooks record: tracing, and not in a vfork child (which shares
/// the parent's state and must leave it alone).
#[inline]
pub fn active() -> bool {
    tracing() && !vfork::in_child()
}

/// Whether this process traces, whichever process is running its memory.
#[inline]
pub fn tracing() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// The socket's fd; -1 in a vfork child, whose copy of it is not ours to
/// protect (it closes on exec).
#[inline]
pub fn own_fd() -> c_int {
    let fd = OWN_FD.load(Ordering::Relaxed);
    if fd >= 0 && vfork::in_child() {
        return -1;
    }
    fd
}

fn acquire() {
    let mut spins = 0u32;
    while SHARED
        .lock
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins < 100 {
            std::hint::spin_loop();
        } else {
            // SAFETY: plain sched_yield call.
            unsafe { libc::sched_yield() };
        }
    }
}

fn release() {
    SHARED.lock.store(false, Ordering::Release);
}

struct Held;

impl Held {
    fn acquire() -> Held {
        acquire();
        Held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        release();
    }
}

/// # Safety
/// The caller holds the lock, or the process is single-threaded, and drops
/// the reference before releasing it.
#[allow(clippy::mut_from_ref)]
unsafe fn state_mut() -> &'static mut State {
    // SAFETY: exclusivity is the caller's obligation, stated above.
    unsafe { &mut *SHARED.state.get() }
}

/// Runs `f` on the state under the lock, unless the connection is gone. A
/// forked child that has not connected yet connects first when `connect`.
pub fn record(connect: bool, f: impl FnOnce(&mut State)) {
    let _held = Held::acquire();
    // SAFETY: the lock is held until `_held` drops, after the last use.
    let st = unsafe { state_mut() };
    if st.out.fd < 0 {
        if !connect || !PENDING.load(Ordering::Relaxed) {
            return;
        }
        PENDING.store(false, Ordering::Relaxed);
        match connect_and_greet() {
            Ok(fd) => st.out.install(fd),
            Err(_) => {
                st.out.die(false);
                return;
            }
        }
    }
    f(st);
    if st.out.len == 0 {
        return;
    }
    if WRITE_THROUGH.load(Ordering::Relaxed) {
        st.out.flush();
        return;
    }
    let now = sys::now_ns();
    if st.out.since == 0 {
        st.out.since = now;
    } else if now.saturating_sub(st.out.since) >= MAX_AGE_NS {
        st.out.flush();
    }
}

/// Sends whatever is buffered.
pub fn flush() {
    record(false, |st| st.out.flush());
}

/// Connects to the collector and greets it; `Err(errno)` on failure.
fn connect_and_greet() -> Result<c_int, c_int> {
    let path = env::get()
        .and_then(|s| s.socket.as_deref())
        .ok_or(libc::ENOENT)?;
    let fd = sys::connect_unix(path)?;
    if let Err(e) = sys::send_all(fd, &hello::greeting()) {
        sys::close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// From a vfork child: sends `msg` on a connection of the child's own,
/// greeted as the child and closed again, so nothing of the parent's
/// state changes. Everything allocated here is freed before the exec.
pub fn send_from_vfork_child(msg: &Message) {
    let Some(socket) = env::get().and_then(|s| s.socket.as_deref()) else {
        return;
    };
    let mut frames = hello::vfork_child_greeting();
    match encode(msg) {
        Ok(frame) => frames.extend_from_slice(&frame),
        Err(_) => return,
    }
    if let Ok(fd) = sys::connect_unix(socket) {
        let _ = sys::send_all(fd, &frames);
        sys::close(fd);
    }
}

/// Opens this process's connection (constructor, forked child) and seeds the
/// cached working directory.
pub fn start() -> Result<(), c_int> {
    let fd = connect_and_greet()?;
    let _held = Held::acquire();
    // SAFETY: the lock is held.
    let st = unsafe { state_mut() };
    st.cwd.refresh();
    st.out.install(fd);
    vfork::set_owner();
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(())
}

/// Destructor: send everything, then stop buffering.
pub fn finish() {
    flush();
    WRITE_THROUGH.store(true, Ordering::Relaxed);
}

/// Called before `fd` is overwritten by dup2/dup3: moves our socket away.
pub fn evacuate(fd: c_int) {
    let _held = Held::acquire();
    // SAFETY: the lock is held.
    let st = unsafe { state_mut() };
    if st.out.fd != fd || fd < 0 {
        return;
    }
    if !st.out.still_ours() {
        st.out.forget();
        return;
    }
    // SAFETY: F_DUPFD_CLOEXEC only creates a new fd.
    let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, fd + 1) };
    if moved < 0 {
        st.out.forget();
        return;
    }
    sys::close(fd);
    st.out.fd = moved;
    OWN_FD.store(moved, Ordering::Relaxed);
}

/// Whether `fd` is the shim's live connection. When the number no longer
/// names it (closed by a raw syscall and reused by the program), the shim
/// forgets it, so the program's own use of that fd goes through untouched.
pub fn claims(fd: c_int) -> bool {
    if fd < 0 || fd != own_fd() {
        return false;
    }
    let _held = Held::acquire();
    // SAFETY: the lock is held.
    let st = unsafe { state_mut() };
    if st.out.fd == fd && st.out.still_ours() {
        return true;
    }
    st.out.forget();
    false
}

impl Out {
    /// Lets go of a connection that is no longer ours (never closing the fd:
    /// the number may be the program's now); the next event connects afresh.
    fn forget(&mut self) {
        self.fd = -1;
        self.len = 0;
        self.since = 0;
        OWN_FD.store(-1, Ordering::Relaxed);
        PENDING.store(true, Ordering::Relaxed);
    }

    fn install(&mut self, fd: c_int) {
        self.adopt(fd);
        self.len = 0;
        self.since = 0;
        OWN_FD.store(fd, Ordering::Relaxed);
    }

    /// Records `fd` and who it belongs to.
    fn adopt(&mut self, fd: c_int) {
        self.fd = fd;
        self.ino = sys::inode(fd).unwrap_or(0);
        // SAFETY: plain getpid call.
        self.pid = unsafe { libc::getpid() };
    }

    /// Whether `fd` is still this process's connection, checked before
    /// every send so that no frame ever lands in a file of the program's.
    fn still_ours(&self) -> bool {
        // SAFETY: plain getpid call.
        self.pid == unsafe { libc::getpid() } && sys::inode(self.fd) == Some(self.ino)
    }

    /// Before a send: a connection that is no longer ours is forgotten
    /// (never closed: the fd may be the program's now) and, in the process
    /// that made it, replaced. Another process (a raw clone, with or
    /// without CLONE_VM) sends nothing and changes nothing: with CLONE_VM
    /// this state is its parent's, which must stay traced.
    fn ensure_ours(&mut self) -> bool {
        if self.still_ours() {
            return true;
        }
        // SAFETY: plain getpid call.
        if self.pid != unsafe { libc::getpid() } {
            return false;
        }
        self.reopen()
    }

    /// Goes passive for good; `close` when the fd is still ours.
    fn die(&mut self, close: bool) {
        if close && self.fd >= 0 {
            sys::close(self.fd);
        }
        self.fd = -1;
        self.len = 0;
        self.since = 0;
        OWN_FD.store(-1, Ordering::Relaxed);
        ACTIVE.store(false, Ordering::Relaxed);
    }

    /// Appends one frame, flushing first when the buffer is full.
    pub fn push(&mut self, msg: &Message) {
        if self.fd < 0 {
            return;
        }
        if let Ok(n) = encode_into(msg, &mut self.buf[self.len..]) {
            self.len += n;
            return;
        }
        self.flush();
        // Still full: the buffer is another process's to send.
        if self.fd < 0 || self.len > 0 {
            return;
        }
        if let Ok(n) = encode_into(msg, &mut self.buf[..]) {
            self.len = n;
        } else if let Ok(frame) = encode(msg) {
            self.send(&frame);
        }
    }

    /// Appends one frame and sends it at once: for events that change the
    /// file system, which must reach the collector even if the process is
    /// killed right after.
    pub fn push_now(&mut self, msg: &Message) {
        self.push(msg);
        self.flush();
    }

    pub fn flush(&mut self) {
        if self.fd < 0 || self.len == 0 {
            return;
        }
        if !self.ensure_ours() {
            return;
        }
        self.since = 0;
        let len = std::mem::take(&mut self.len);
        let fd = self.fd;
        match sys::send_all(fd, &self.buf[..len]) {
            Ok(()) => {}
            Err(libc::EBADF) => {
                if self.reopen() && sys::send_all(self.fd, &self.buf[..len]).is_err() {
                    self.die(true);
                }
            }
            Err(e) => self.die(e != libc::ENOTSOCK),
        }
    }

    fn send(&mut self, data: &[u8]) {
        if !self.ensure_ours() {
            return;
        }
        match sys::send_all(self.fd, data) {
            Ok(()) => {}
            Err(libc::EBADF) => {
                if self.reopen() && sys::send_all(self.fd, data).is_err() {
                    self.die(true);
                }
            }
            Err(e) => self.die(e != libc::ENOTSOCK),
        }
    }

    /// Our fd was closed behind our back: connect again, say Hello again.
    fn reopen(&mut self) -> bool {
        match connect_and_greet() {
            Ok(fd) => {
                self.adopt(fd);
                OWN_FD.store(fd, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.die(false);
                false
            }
        }
    }
}

/// `pthread_atfork` prepare: take the lock (so the child never inherits it
/// held mid-write) and flush, so no event is sent twice or lost.
extern "C" fn before_fork() {
    if !active() || guard::busy() {
        return;
    }
    // Hooks reached from other atfork handlers on this thread pass through.
    guard::set_busy(true);
    acquire();
    PREPARED.store(true, Ordering::Relaxed);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the lock is held (until `after_fork_parent`).
        unsafe { state_mut() }.out.flush();
    }));
}

extern "C" fn after_fork_parent() {
    if PREPARED.swap(false, Ordering::Relaxed) {
        release();
        guard::set_busy(false);
    }
}

/// The child forgets the parent's connection; it opens its own with its first
/// event (see [`PENDING`]).
extern "C" fn after_fork_child() {
    let prepared = PREPARED.swap(false, Ordering::Relaxed);
    SHARED.lock.store(false, Ordering::Release);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the child is single-threaded here.
        let st = unsafe { state_mut() };
        let was_active = tracing();
        // The child's copy of the parent's socket: never written on. Closed
        // only if the number still names it (a fork made by a vfork child,
        // which may have reused the number, finds a program's fd there).
        if st.out.fd >= 0 && sys::inode(st.out.fd) == Some(st.out.ino) {
            sys::close(st.out.fd);
        }
        st.out.die(false);
        if was_active {
            vfork::set_owner();
            hello::forked();
            PENDING.store(true, Ordering::Relaxed);
            ACTIVE.store(true, Ordering::Relaxed);
        }
    }));
    if prepared {
        guard::set_busy(false);
    }
}

/// In the child of a fork that ran no atfork handlers (`_Fork`), possibly
/// from a signal handler: only async-signal-safe work is allowed, so the
/// child drops the parent's connection and stays passive. An exec it makes
/// next connects afresh from the new image.
#[cfg(target_os = "linux")]
pub fn abandon_in_child() {
    if !tracing() {
        return;
    }
    ACTIVE.store(false, Ordering::Relaxed);
    PENDING.store(false, Ordering::Relaxed);
    // SAFETY: the child is single-threaded here, and with ACTIVE false no
    // hook takes the lock again.
    let st = unsafe { state_mut() };
    if st.out.fd >= 0 {
        sys::close(st.out.fd);
    }
    st.out.die(false);
    SHARED.lock.store(false, Ordering::Release);
}

pub fn register_fork_handlers() {
    // SAFETY: the handlers are plain extern "C" functions of this library.
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_parent),
            Some(after_fork_child),
        )
    };
}
