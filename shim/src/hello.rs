//! Who this process image is: captured once at load, sent as the first frame
//! of every connection (at load, in a forked child, after a reconnect).

use std::ffi::CStr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use libc::{c_char, c_int};
use roar_protocol::{encode, preamble, Bytes, Hello, Message};

use crate::{env, paths, platform, sys};

struct Identity {
    exe: Vec<u8>,
    argv: Vec<Vec<u8>>,
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();
/// The parent at fork time, for a forked child that connects later: by then
/// its parent may have exited and `getppid()` would name the reaper.
static PARENT_AT_FORK: AtomicI32 = AtomicI32::new(0);

/// Called in the child right after fork.
pub fn forked() {
    // SAFETY: plain getppid call.
    PARENT_AT_FORK.store(unsafe { libc::getppid() }, Ordering::Relaxed);
}

/// Records exe and argv (copied: programs may rewrite their argv area).
///
/// # Safety
/// `argv` is NULL or holds `argc` valid NUL-terminated strings.
pub unsafe fn capture(argc: c_int, argv: *const *const c_char) {
    let mut args = Vec::new();
    if !argv.is_null() {
        for i in 0..usize::try_from(argc).unwrap_or(0) {
            // SAFETY: i < argc, within the array by the contract above.
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                break;
            }
            // SAFETY: a non-NULL argv entry is a NUL-terminated string.
            args.push(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec());
        }
    }
    let mut exe = vec![0u8; paths::PATH_MAX];
    let n = platform::exe_path(&mut exe, &args);
    exe.truncate(n);
    let _ = IDENTITY.set(Identity { exe, argv: args });
}

/// roar's own programs are never traced, even when started inside a traced
/// job (a nested `roar run`, a launcher starting the collector). Known by
/// the name they were started by, which costs no system call.
pub fn is_roar_itself() -> bool {
    let mut name = [0u8; paths::PATH_MAX];
    let n = platform::program_name(&mut name);
    let base = name[..n].rsplit(|&b| b == b'/').next().unwrap_or(&[]);
    base == b"roar" || base == b"roar-collector"
}

/// The preamble followed by a Hello frame for the calling process, ready to
/// send. A Hello too large for one frame loses argv entries from the end.
pub fn greeting() -> Vec<u8> {
    let at_fork = PARENT_AT_FORK.load(Ordering::Relaxed);
    let parent = if at_fork != 0 {
        at_fork
    } else {
        // SAFETY: plain getppid call.
        unsafe { libc::getppid() }
    };
    greeting_with_parent(parent)
}

/// [`greeting`] for a vfork child: its parent is the process whose memory
/// (and parent-at-fork record) it runs on, waiting for it.
pub fn vfork_child_greeting() -> Vec<u8> {
    // SAFETY: plain getppid call.
    greeting_with_parent(unsafe { libc::getppid() })
}

fn greeting_with_parent(ppid: c_int) -> Vec<u8> {
    let id = IDENTITY.get();
    let job = env::get().map_or(&[][..], |s| &s.job[..]);
    let mut cwd = [0u8; paths::PATH_MAX];
    let cwd_len = sys::getcwd(&mut cwd);
    // SAFETY: plain getpid call.
    let pid = unsafe { libc::getpid() };
    let argv: Vec<Bytes> = id.map_or(Vec::new(), |id| {
        id.argv.iter().map(|a| Bytes::borrowed(a)).collect()
    });
    let mut hello = Hello {
        pid,
        ppid,
        job_token: Bytes::borrowed(job),
        exe: Bytes::borrowed(id.map_or(&[][..], |id| &id.exe[..])),
        argv,
        cwd: Bytes::borrowed(&cwd[..cwd_len]),
        t_ns: sys::now_ns(),
    };
    let mut out = preamble().to_vec();
    loop {
        match encode(&Message::Hello(hello.clone())) {
            Ok(frame) => {
                out.extend_from_slice(&frame);
                return out;
            }
            Err(_) if !hello.argv.is_empty() => {
                let keep = hello.argv.len() / 2;
                hello.argv.truncate(keep);
            }
            Err(_) => return out,
        }
    }
}
