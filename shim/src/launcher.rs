//! Launcher mode: `LD_PRELOAD=libroar.so` without `roar run`. The shim
//! finds the project by the nearest `.roar/` above the working directory,
//! talks to its collector on `.roar/collector.sock`, and starts that
//! collector when nobody answers (one starter wins a lock; the program waits
//! at most [`START_WAIT`], then runs untraced if it failed).

use std::ffi::CString;
use std::time::{Duration, Instant};

use libc::{c_char, c_int};

use crate::{real, sys};

/// The longest a traced program waits for a collector to come up.
pub const START_WAIT: Duration = Duration::from_millis(2000);
const POLL: Duration = Duration::from_millis(20);
/// After a failed start, starters leave the collector alone this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// sockaddr_un's path room on Linux and macOS (104 there; the shorter wins).
const SUN_PATH_MAX: usize = 104;
const COLLECTOR: &str = "roar-collector";

/// The project root: the nearest directory above `cwd` holding `.roar/`.
pub fn project_root(cwd: &[u8]) -> Option<Vec<u8>> {
    let mut dir = cwd.to_vec();
    loop {
        let mut probe = dir.clone();
        if probe.last() != Some(&b'/') {
            probe.push(b'/');
        }
        probe.extend_from_slice(b".roar/roar.db");
        if sys::is_file(&probe) {
            return Some(dir);
        }
        match dir.iter().rposition(|&b| b == b'/') {
            Some(0) if dir.len() > 1 => dir.truncate(1),
            Some(i) if i > 0 => dir.truncate(i),
            _ => return None,
        }
    }
}

pub fn socket_of(root: &[u8]) -> Vec<u8> {
    join(root, b".roar/collector.sock")
}

fn join(dir: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(rest);
    p
}

/// A fresh job token: 16 random bytes, hex.
pub fn fresh_token() -> Vec<u8> {
    let mut bytes = [0u8; 16];
    if !sys::random(&mut bytes) {
        // No randomness: pid and time still tell concurrent roots apart.
        let seed = (std::process::id() as u64) << 32 ^ sys::now_ns();
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
    }
    bytes
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

/// `roar-collector` beside this library, else on `PATH`.
fn collector_path(self_path: &[u8], path_var: Option<&[u8]>) -> Option<Vec<u8>> {
    let beside = self_path
        .iter()
        .rposition(|&b| b == b'/')
        .map(|i| join(&self_path[..i], COLLECTOR.as_bytes()));
    let on_path = path_var
        .into_iter()
        .flat_map(|p| p.split(|&b| b == b':'))
        .map(|d| join(d, COLLECTOR.as_bytes()));
    beside
        .into_iter()
        .chain(on_path)
        .find(|c| sys::is_executable_file(c))
}

/// Starts the project's collector unless one answers, and waits until it
/// does (at most [`START_WAIT`]). True when it answers.
pub fn start_collector(root: &[u8], self_path: &[u8], env: &[Vec<u8>]) -> bool {
    let socket = socket_of(root);
    // Not worth a wait: a socket path the kernel refuses, or a collector
    // that failed to start moments ago (its reason is in .roar/collector.failed).
    if socket.len() >= SUN_PATH_MAX
        || sys::modified_within(&join(root, b".roar/collector.failed"), RETRY_AFTER)
    {
        return false;
    }
    let deadline = Instant::now() + START_WAIT;
    let lock = sys::open_lock(&join(root, b".roar/collector.lock"));
    // One starter at a time; the others wait for its collector.
    while lock >= 0 && !sys::try_lock(lock) {
        if answers(&socket) || Instant::now() >= deadline {
            sys::close(lock);
            return answers(&socket);
        }
        std::thread::sleep(POLL);
    }
    let started = answers(&socket) || spawn(root, &socket, self_path, env);
    let up = started && wait_for(&socket, deadline);
    if lock >= 0 {
        sys::close(lock); // releases the lock
    }
    up
}

fn answers(socket: &[u8]) -> bool {
    match sys::connect_unix(socket) {
        Ok(fd) => {
            sys::close(fd);
            true
        }
        Err(_) => false,
    }
}

fn wait_for(socket: &[u8], deadline: Instant) -> bool {
    loop {
        if answers(socket) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Double-forks the collector: it belongs to no traced process (no zombie,
/// no child for the program to wait for), in its own session, with no fd
/// of the program and no preload.
fn spawn(root: &[u8], socket: &[u8], self_path: &[u8], env: &[Vec<u8>]) -> bool {
    let path_var = env.iter().find_map(|e| e.strip_prefix(b"PATH="));
    let Some(exe) = collector_path(self_path, path_var) else {
        return false;
    };
    let db = join(root, b".roar/roar.db");
    let log = join(root, b".roar/collector.log");
    let args: Vec<&[u8]> = vec![
        COLLECTOR.as_bytes(),
        b"--daemon",
        b"--socket",
        socket,
        b"--db",
        &db,
        b"--project",
        root,
    ];
    let cstr = |b: &[u8]| CString::new(b.to_vec()).ok();
    let (Some(exe_c), Some(log_c)) = (cstr(&exe), cstr(&log)) else {
        return false;
    };
    let argv: Option<Vec<CString>> = args.iter().map(|a| cstr(a)).collect();
    let envv: Option<Vec<CString>> = env
        .iter()
        .filter(|e| {
            let name = e.split(|&b| b == b'=').next().unwrap_or(&[]);
            !name.starts_with(b"ROAR_") && name != b"LD_PRELOAD" && name != b"DYLD_INSERT_LIBRARIES"
        })
        .map(|e| cstr(e))
        .collect();
    let (Some(argv), Some(envv)) = (argv, envv) else {
        return false;
    };
    let argv_p: Vec<*const c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let env_p: Vec<*const c_char> = envv
        .iter()
        .map(|e| e.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let (Some(fork), Some(execve), Some(exit)) = (real::fork(), real::execve(), real::_exit())
    else {
        return false;
    };
    // SAFETY: fork has no preconditions; everything the children use was
    // allocated before it.
    let child = unsafe { fork() };
    if child < 0 {
        return false;
    }
    if child == 0 {
        // SAFETY: in the first child: only async-signal-safe calls on data
        // prepared before fork, then _exit.
        unsafe {
            libc::setsid();
            if fork() == 0 {
                // Raw system calls: nothing of ours (hooks, locks) runs here.
                let null = sys::raw_open(c"/dev/null".as_ptr(), libc::O_RDWR);
                let append = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND;
                let logfd = sys::raw_open(log_c.as_ptr(), append);
                if null >= 0 {
                    sys::raw_dup2(null, 0);
                    sys::raw_dup2(null, 1);
                    sys::raw_dup2(if logfd >= 0 { logfd } else { null }, 2);
                }
                sys::raw_close_from(3);
                // Not the program's folder (it may go away) nor its mask.
                libc::chdir(c"/".as_ptr());
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                execve(exe_c.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
            }
            exit(0);
        }
    }
    let mut status: c_int = 0;
    // SAFETY: waits for our own first child only, which exits at once.
    while unsafe { libc::waitpid(child, &mut status, 0) } < 0 && sys::errno() == libc::EINTR {}
    true
}
