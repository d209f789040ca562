//! Process structure: vfork, the exec family, posix_spawn, and the ways out
//! (exit, _exit, _Exit, returning from main).

use std::panic::{catch_unwind, AssertUnwindSafe};
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_char, c_int, pid_t};
#[cfg(target_os = "linux")]
use libc::{c_void, FILE};
use libc::{posix_spawn_file_actions_t as SpawnActions, posix_spawnattr_t as SpawnAttr};
use roar_protocol::{Bytes, Message, UntracedReason};

use super::{c_bytes, enosys, observe, observe_connected};
#[cfg(target_os = "linux")]
use crate::elf;
use crate::real;
#[cfg(target_os = "linux")]
use crate::real::MainFn;
use crate::{conn, env, guard, paths, platform, sys, vfork};

/// What an exec runs.
enum Target {
    /// A path (relative to the current directory when it has no slash).
    Path(*const c_char),
    /// A name PATH is searched for when it has no slash (the `p` variants).
    Search(*const c_char),
    /// fexecve's fd.
    #[cfg(target_os = "linux")]
    Fd(c_int),
}

/// The file an exec of `target` runs, as it can be opened from here, and
/// why the preload library cannot trace it; `None` for ordinary programs.
fn why_untraced(target: &Target) -> Option<(Vec<u8>, UntracedReason)> {
    let name = match *target {
        #[cfg(target_os = "linux")]
        Target::Fd(fd) => {
            let reason = elf::untraceable_fd(fd)?;
            let mut buf = [0u8; paths::PATH_MAX];
            let n = sys::fd_path(fd, &mut buf);
            return Some((buf[..n].to_vec(), reason));
        }
        // SAFETY: the caller's path argument, valid for the whole hook.
        Target::Path(p) => return unsafe { c_bytes(p) }.and_then(checked),
        // SAFETY: as above.
        Target::Search(p) => unsafe { c_bytes(p) }?,
    };
    if name.contains(&b'/') {
        return checked(name);
    }
    // SAFETY: getenv returns NULL or a NUL-terminated string; not hooked.
    let search = unsafe { c_bytes(libc::getenv(c"PATH".as_ptr())) }.unwrap_or(b"/bin:/usr/bin");
    for dir in search.split(|&b| b == b':') {
        let mut candidate = if dir.is_empty() {
            b".".to_vec()
        } else {
            dir.to_vec()
        };
        candidate.push(b'/');
        candidate.extend_from_slice(name);
        candidate.push(0);
        if platform::is_executable(&candidate) {
            candidate.pop();
            return checked(&candidate);
        }
    }
    None
}

fn checked(path: &[u8]) -> Option<(Vec<u8>, UntracedReason)> {
    platform::untraceable(path).map(|r| (path.to_vec(), r))
}

/// Tells the collector, before an exec or spawn, that what is about to run
/// escapes tracing (a forked child connects for this). Not from inside the
/// shim (an exec that libc makes on behalf of a hooked call), which could
/// not record it anyway.
fn report_untraced(target: &Target) {
    if !conn::tracing() || guard::busy() {
        return;
    }
    let saved = sys::errno();
    let found = catch_unwind(AssertUnwindSafe(|| why_untraced(target))).unwrap_or(None);
    sys::set_errno(saved);
    let Some((path, reason)) = found else {
        return;
    };
    if vfork::in_child() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let mut cwd = paths::Cwd::new();
            cwd.refresh();
            let mut scratch = vec![0u8; paths::SCRATCH_LEN];
            conn::send_from_vfork_child(&Message::Untraced {
                path: Bytes::borrowed(paths::resolve(&cwd, &mut scratch, libc::AT_FDCWD, &path)),
                reason,
                t_ns: sys::now_ns(),
            });
        }));
        sys::set_errno(saved);
        return;
    }
    observe(|st| {
        let path = paths::resolve(&st.cwd, &mut st.scratch[0], libc::AT_FDCWD, &path);
        st.out.push_now(&Message::Untraced {
            path: Bytes::borrowed(path),
            reason,
            t_ns: sys::now_ns(),
        });
    });
}

/// Reports the exec and sends everything buffered: the image is about to go.
fn before_exec(target: Target) {
    report_untraced(&target);
    observe_connected(|st| {
        let path = match target {
            // SAFETY: the caller's path argument, valid for the whole hook.
            Target::Path(p) | Target::Search(p) => match unsafe { c_bytes(p) } {
                Some(p) if p.contains(&b'/') => Some(paths::resolve(
                    &st.cwd,
                    &mut st.scratch[0],
                    libc::AT_FDCWD,
                    p,
                )),
                other => other,
            },
            #[cfg(target_os = "linux")]
            Target::Fd(fd) => {
                let n = sys::fd_path(fd, &mut st.scratch[0]);
                Some(&st.scratch[0][..n])
            }
        };
        if let Some(path) = path {
            st.out.push(&Message::Exec {
                path: Bytes::borrowed(path),
                t_ns: sys::now_ns(),
            });
        }
        st.out.flush();
    });
}

/// Before a posix_spawn: the child says Hello itself; only flush, so the
/// parent's earlier events reach the collector first.
fn before_spawn() {
    observe_connected(|st| st.out.flush());
}

/// Calls `call` with `envp`, or with a copy that carries the tracing again
/// when the program dropped it (built on this stack: see [`env::Room`]).
/// errno is the original's.
fn with_env<R>(envp: *const *const c_char, call: impl FnOnce(*const *const c_char) -> R) -> R {
    let saved = sys::errno();
    // SAFETY: `envp` is the caller's environment array (or environ).
    let lacking = catch_unwind(AssertUnwindSafe(|| unsafe { env::lacking(envp) })).unwrap_or(None);
    sys::set_errno(saved);
    let Some(lacking) = lacking else {
        return call(envp);
    };
    let mut room = env::Room::new();
    let (room, lacking) = (&mut room, &lacking);
    let heap_ok = !vfork::in_child();
    let rebuilt = catch_unwind(AssertUnwindSafe(move || {
        // Moved in: the result borrows the room past the closure.
        let room = room;
        // SAFETY: as above; `envp` outlives the call.
        unsafe { env::rebuilt(envp, lacking, room, heap_ok) }
    }))
    .unwrap_or(None);
    sys::set_errno(saved);
    let ret = call(rebuilt.as_ref().map_or(envp, env::Rebuilt::as_ptr));
    let err = sys::errno();
    drop(rebuilt);
    sys::set_errno(err);
    ret
}

/// vfork as fork, where vfork cannot be kept (macOS; Linux on other
/// processors than x86-64 and arm64; see `crate::vfork`): the child then
/// has its own memory, so the atfork handlers can safely give it its own
/// connection.
#[no_mangle]
pub unsafe extern "C" fn roar_vfork() -> pid_t {
    let Some(fork) = real::fork() else {
        return enosys(-1);
    };
    // SAFETY: plain fork; glibc runs the atfork handlers.
    unsafe { fork() }
}

/// `_Fork` runs no atfork handlers: the child must not write on the
/// parent's connection.
#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar__Fork() -> pid_t {
    let Some(fork) = real::_Fork() else {
        return enosys(-1);
    };
    // SAFETY: plain _Fork.
    let pid = unsafe { fork() };
    if pid == 0 {
        conn::abandon_in_child();
    }
    pid
}

/// Runs `call` (glibc's system and popen, macOS's execvp: they use the
/// current `environ`) with an environment that carries the tracing, when the
/// program scrubbed its own. The program's `environ` is back in place
/// afterwards.
fn with_environ<R>(call: impl FnOnce() -> R) -> R {
    if vfork::in_child() {
        // The process's `environ` is the parent's: left alone.
        return call();
    }
    let environ = platform::environ();
    let saved = sys::errno();
    // SAFETY: reading the process's environ pointer.
    let current = unsafe { *environ };
    // SAFETY: `current` is the process's environment array, alive while
    // the copy is in use.
    let repaired = catch_unwind(AssertUnwindSafe(|| unsafe {
        env::lacking(current).and_then(|lacking| env::repaired(current, &lacking))
    }))
    .unwrap_or(None);
    sys::set_errno(saved);
    let Some(repaired) = repaired else {
        return call();
    };
    // SAFETY: a NULL-terminated array that outlives the call.
    unsafe { *environ = repaired.as_ptr() };
    let ret = call();
    let err = sys::errno();
    // SAFETY: as above.
    unsafe {
        if *environ == repaired.as_ptr() {
            *environ = current;
            drop(repaired);
        } else {
            // Another thread's setenv copied our entries: keep them alive.
            std::mem::forget(repaired);
        }
    }
    sys::set_errno(err);
    ret
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_system(command: *const c_char) -> c_int {
    let Some(real) = real::system() else {
        return enosys(-1);
    };
    before_spawn();
    // SAFETY: the caller's argument, forwarded unchanged.
    with_environ(|| unsafe { real(command) })
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_popen(command: *const c_char, mode: *const c_char) -> *mut FILE {
    let Some(real) = real::popen() else {
        return enosys(std::ptr::null_mut());
    };
    before_spawn();
    // SAFETY: the caller's arguments, forwarded unchanged.
    with_environ(|| unsafe { real(command, mode) })
}

#[no_mangle]
pub unsafe extern "C" fn roar_execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(real) = real::execve() else {
        return enosys(-1);
    };
    before_exec(Target::Path(path));
    // SAFETY: the caller's arguments; envp possibly repaired, NULL-terminated.
    with_env(envp, |envp| unsafe { real(path, argv, envp) })
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(real) = real::execvpe() else {
        return enosys(-1);
    };
    before_exec(Target::Search(file));
    // SAFETY: the caller's arguments; envp possibly repaired, NULL-terminated.
    with_env(envp, |envp| unsafe { real(file, argv, envp) })
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: c_int,
) -> c_int {
    let Some(real) = real::execveat() else {
        return enosys(-1);
    };
    // SAFETY: the caller's path argument, valid for the whole hook.
    let empty = unsafe { c_bytes(path) }.is_none_or(<[u8]>::is_empty);
    if flags & libc::AT_EMPTY_PATH != 0 && empty {
        before_exec(Target::Fd(dirfd));
    } else if dirfd == libc::AT_FDCWD {
        before_exec(Target::Path(path));
    } else {
        // Relative to another directory: flush only; the new image says Hello.
        before_spawn();
    }
    // SAFETY: the caller's arguments; envp possibly repaired, NULL-terminated.
    with_env(envp, |envp| unsafe { real(dirfd, path, argv, envp, flags) })
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(real) = real::fexecve() else {
        return enosys(-1);
    };
    before_exec(Target::Fd(fd));
    // SAFETY: the caller's arguments; envp possibly repaired, NULL-terminated.
    with_env(envp, |envp| unsafe { real(fd, argv, envp) })
}

/// macOS `execv` (and `execl`): `execve` with the current environment.
#[cfg(target_os = "macos")]
#[no_mangle]
pub unsafe extern "C" fn roar_execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: the caller's arguments and the process's environment, which
    // is what execv passes.
    unsafe { roar_execve(path, argv, *platform::environ()) }
}

/// macOS `execvp` (and `execlp`). There is no `execvpe` to hand a repaired
/// environment to, but execvp passes the current `environ` on, so that is
/// where the repaired one goes for the call. The original tries `execve`
/// along PATH, which dyld may route back here: see [`platform::whole_call`].
#[cfg(target_os = "macos")]
#[no_mangle]
pub unsafe extern "C" fn roar_execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    let Some(real) = real::execvp() else {
        return enosys(-1);
    };
    before_exec(Target::Search(file));
    // SAFETY: the caller's arguments, forwarded unchanged.
    with_environ(|| platform::whole_call(|| unsafe { real(file, argv) }))
}

#[no_mangle]
pub unsafe extern "C" fn roar_posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const SpawnActions,
    attr: *const SpawnAttr,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(real) = real::posix_spawn() else {
        return libc::ENOSYS;
    };
    report_untraced(&Target::Path(path));
    before_spawn();
    // SAFETY: the caller's arguments; envp possibly repaired, NULL-terminated.
    with_env(envp, |envp| unsafe {
        real(pid, path, actions, attr, argv, envp)
    })
}

#[no_mangle]
pub unsafe extern "C" fn roar_posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    actions: *const SpawnActions,
    attr: *const SpawnAttr,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(real) = real::posix_spawnp() else {
        return libc::ENOSYS;
    };
    report_untraced(&Target::Search(file));
    before_spawn();
    // The original searches PATH through other libc functions: see
    // `platform::whole_call`.
    with_env(envp, |envp| {
        platform::whole_call(|| {
            // SAFETY: the caller's arguments; envp possibly repaired,
            // NULL-terminated.
            unsafe { real(pid, file, actions, attr, argv, envp) }
        })
    })
}

/// Reports the exit status and sends everything buffered.
fn exiting(status: c_int) {
    observe(|st| {
        st.out.push(&Message::Exit {
            // What the parent's wait will see.
            status: status & 0xff,
            t_ns: sys::now_ns(),
        });
        st.out.flush();
    });
}

#[no_mangle]
pub unsafe extern "C" fn roar_exit(status: c_int) -> ! {
    exiting(status);
    match real::exit() {
        // SAFETY: the caller's argument, forwarded unchanged.
        Some(exit) => unsafe { exit(status) },
        None => platform::exit_group(status),
    }
}

/// `_exit` and `_Exit` (one function in glibc; macOS's `_Exit` ends the
/// same way).
#[no_mangle]
pub unsafe extern "C" fn roar__exit(status: c_int) -> ! {
    exiting(status);
    match real::_exit() {
        // SAFETY: the caller's argument, forwarded unchanged.
        Some(exit) => unsafe { exit(status) },
        None => platform::exit_group(status),
    }
}

/// The program's real `main`, for [`main_wrapper`].
#[cfg(target_os = "linux")]
static MAIN: AtomicUsize = AtomicUsize::new(0);

/// Runs `main` and reports its return value as the exit status: glibc's own
/// `exit` call after main is internal and never reaches the `exit` hook.
#[cfg(target_os = "linux")]
unsafe extern "C" fn main_wrapper(
    argc: c_int,
    argv: *mut *mut c_char,
    envp: *mut *mut c_char,
) -> c_int {
    // SAFETY: MAIN holds the `main` that __libc_start_main received, stored
    // before this wrapper was handed over in its place.
    let main = unsafe { std::mem::transmute::<usize, MainFn>(MAIN.load(Ordering::Relaxed)) };
    // SAFETY: calling the program's main exactly as glibc would.
    let status = unsafe { main(argc, argv, envp) };
    exiting(status);
    status
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub unsafe extern "C" fn roar_libc_start_main(
    main: MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    init: *mut c_void,
    fini: *mut c_void,
    rtld_fini: *mut c_void,
    stack_end: *mut c_void,
) -> c_int {
    let Some(real) = real::__libc_start_main() else {
        return enosys(-1);
    };
    let main = if conn::active() {
        MAIN.store(main as usize, Ordering::Relaxed);
        main_wrapper as MainFn
    } else {
        main
    };
    // SAFETY: the caller's arguments, with `main` possibly wrapped.
    unsafe { real(main, argc, argv, init, fini, rtld_fini, stack_end) }
}
