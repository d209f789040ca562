//! `roar tracer` / `roar tracer check`: which tracing backends this build
//! has and whether the preload one works here, found by tracing a tiny
//! probe for real: its hello must reach a socket we listen on.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use roar_protocol::env as names;

use crate::error::Result;
use crate::locate;
use crate::out::outln;

const PROBE_WAIT: Duration = Duration::from_secs(3);

/// Whether the file system holding `path` is mounted noexec (the loader
/// then refuses to map the library).
fn on_noexec_mount(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let best = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, _, opts) = (f.next()?, f.next()?, f.next()?, f.next()?);
            path.starts_with(dir).then_some((dir.len(), opts))
        })
        .max_by_key(|(len, _)| *len);
    best.is_some_and(|(_, opts)| opts.split(',').any(|o| o == "noexec"))
}

/// The program traced as a probe: `true` from PATH; on macOS a copy of it
/// beside the probe socket, since SIP strips DYLD_* from /usr/bin itself.
fn probe_program(socket: &Path) -> std::path::PathBuf {
    if cfg!(target_os = "macos") {
        let copy = socket.with_file_name(format!("roar-probe-true-{}", std::process::id()));
        if std::fs::copy("/usr/bin/true", &copy).is_ok() {
            return copy;
        }
    }
    "true".into()
}

/// Traces `true` with the shim; Ok(milliseconds until its hello) or why not.
fn probe(shim: &Path) -> std::result::Result<u128, String> {
    let socket = std::env::temp_dir().join(format!("roar-probe-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|e| format!("cannot listen: {e}"))?;
    // Removed whatever happens below.
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _cleanup = Cleanup(&socket);
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen: {e}"))?;
    let started = Instant::now();
    let mut child = Command::new(probe_program(&socket))
        .env(names::PRELOAD, shim)
        .env(names::SOCKET, &socket)
        .env(names::JOB, "probe")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run the probe `true`: {e}"))?;
    let result = loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(PROBE_WAIT));
                let mut magic = [0u8; 4];
                break match stream.read_exact(&mut magic) {
                    Ok(()) if magic == roar_protocol::MAGIC => Ok(started.elapsed().as_millis()),
                    _ => Err("the probe connected but did not speak roar's protocol".to_string()),
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() > PROBE_WAIT {
                    break Err("the loader did not run the library in the probe".to_string());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => break Err(format!("probe socket: {e}")),
        }
    };
    let _ = child.wait();
    if cfg!(target_os = "macos") {
        let _ = std::fs::remove_file(probe_program(&socket));
    }
    result
}

/// Whether preload tracing works here: Ok(where and how fast) or Err(what
/// is wrong and what to do).
pub fn diagnose() -> std::result::Result<String, String> {
    let shim = locate::shim().map_err(|e| e.message)?;
    if on_noexec_mount(&shim) {
        return Err(format!(
            "{} is on a noexec mount, so the loader cannot map it; install roar elsewhere (scripts/install.sh)",
            shim.display()
        ));
    }
    let ms = probe(&shim).map_err(|why| {
        format!(
            "{}: {why}; check that nothing strips {} (setuid wrappers, SIP on macOS)",
            shim.display(),
            names::PRELOAD
        )
    })?;
    // The interpreter most jobs run: on macOS, /usr/bin/python3 loses DYLD_*.
    if let Some((path, reason)) = crate::untraced::check(std::ffi::OsStr::new("python3")) {
        if reason == roar_protocol::UntracedReason::Sip {
            return Err(format!(
                "python3 on PATH is {path}, which {}; use a Python from a venv, conda or pyenv",
                reason.explain()
            ));
        }
    }
    Ok(format!(
        "{} (a traced probe answered in {ms} ms)",
        shim.display()
    ))
}

/// Prints the backends; the exit status says whether preload works.
pub fn tracer(check_only: bool) -> Result<i32> {
    let (ready, detail) = match diagnose() {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    if check_only {
        if ready {
            outln!("preload ready: {detail}");
        } else {
            eprintln!("roar: tracing is not available: {detail}");
        }
    } else {
        outln!(
            "preload  {}  {detail}",
            if ready { "ready" } else { "NOT READY" }
        );
        outln!("ptrace   not available in this build");
        outln!("ebpf     not available in this build");
    }
    Ok(if ready { 0 } else { 1 })
}
