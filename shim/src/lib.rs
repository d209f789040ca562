//! `libroar.so` (`libroar.dylib` on macOS): preloaded into every traced
//! process, it interposes the libc calls that open, rename, remove and link
//! files and that create, replace and end processes, and reports them to the
//! collector over a Unix socket (see `roar-protocol` for the wire format).
//!
//! Layout: on Linux `c/exports.c` defines the exported libc symbols, on macOS
//! `c/interpose_macos.c` lists dyld interposing pairs; both lead to the
//! `roar_*` entry points in [`hooks`]. [`real`] holds the originals, [`conn`]
//! the connection and event buffer, [`guard`] the per-thread recursion
//! guard, [`paths`] path resolution, [`env`] the tracing environment and its
//! repair, [`hello`] the process's introduction, [`platform`] what differs
//! between the systems.
//!
//! Rules kept everywhere: the program sees the same results and errno as
//! without the shim; no panic crosses the FFI boundary; with no collector the
//! shim is pure pass-through.

// Linux glibc and macOS; elsewhere the library is empty so the workspace
// still builds.
#![cfg(any(target_os = "linux", target_os = "macos"))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The `roar_*` entry points are called only through c/exports.c or
// c/interpose_macos.c, with the arguments of the libc function they stand for.
#![allow(clippy::missing_safety_doc)]

mod conn;
#[cfg(target_os = "linux")]
mod elf;
mod env;
mod guard;
mod hello;
mod hooks;
mod launcher;
mod paths;
mod platform;
#[cfg(target_os = "linux")]
mod real;
mod sys;
mod vfork;
mod written;

#[cfg(target_os = "macos")]
use platform::real;

use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::{c_char, c_int};

/// One line on stderr, only with `ROAR_VERBOSE=1`.
fn say(what: &str) {
    let line = format!(
        "roar: {} stays passive in pid {}: {what}\n",
        platform::LIB_NAME,
        std::process::id()
    );
    // SAFETY: writing a valid buffer to fd 2; failure is ignored.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// The load-time constructor (called from the C file's constructor with the
/// argc/argv/envp that glibc, and dyld, pass to them): resolve the originals,
/// snapshot the environment, connect.
#[no_mangle]
pub unsafe extern "C" fn roar_init(
    argc: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) {
    let saved = sys::errno();
    let Some(_entered) = guard::enter() else {
        return;
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // Our own panics (none expected) must never print into the program's stderr.
        std::panic::set_hook(Box::new(|_| {}));
        // macOS needs no resolving: dyld bound the originals at load.
        #[cfg(target_os = "linux")]
        real::resolve_all();
        // roar's own programs stay untraced and pass no tracing on: no
        // snapshot means no environment repair either.
        if hello::is_roar_itself() {
            return;
        }
        // SAFETY: the loader passes the process's environment array.
        let snap = unsafe { env::capture(envp) };
        let Some(socket) = snap.socket.as_deref() else {
            if snap.verbose {
                say("ROAR_SOCKET is not set and no .roar/ is above the working directory");
            }
            return;
        };
        // Only a traced process needs its identity (exe, argv): a passive
        // one is spared the /proc/self/exe lookup (~25 µs per process).
        // SAFETY: the loader passes argc and the matching argv array.
        unsafe { hello::capture(argc, argv) };
        let mut started = conn::start();
        if let (Err(_), Some((root, env))) = (started, &snap.launcher) {
            // Nobody answers for this project yet: start its collector.
            if launcher::start_collector(root, &snap.self_path, env) {
                started = conn::start();
            }
        }
        match started {
            Ok(()) => conn::register_fork_handlers(),
            Err(e) if snap.verbose => say(&format!(
                "cannot connect to {}: {}",
                String::from_utf8_lossy(socket),
                std::io::Error::from_raw_os_error(e)
            )),
            Err(_) => {}
        }
    }));
    sys::set_errno(saved);
}

/// The unload-time destructor: send what is buffered.
#[no_mangle]
pub extern "C" fn roar_fini() {
    if !conn::active() {
        return;
    }
    let saved = sys::errno();
    if let Some(_entered) = guard::enter() {
        let _ = catch_unwind(conn::finish);
    }
    sys::set_errno(saved);
}
