//! Launcher mode from the terminal: `roar collector start|stop|status`
//! manage the project's collector daemon, and `roar env` prints what a
//! launcher must export (`LD_PRELOAD`, `ROAR_SOCKET`).

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{CliError, Result};
use crate::locate;
use crate::out::outln;
use crate::project::Project;

const START_WAIT: Duration = Duration::from_secs(5);

pub fn socket(project: &Project) -> PathBuf {
    project.dir().join("collector.sock")
}

fn answers(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

fn pid(project: &Project) -> Option<i32> {
    let file = roar_collector::daemon::pid_file(&socket(project));
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

pub fn start(project: &Project) -> Result<()> {
    let sock = socket(project);
    if answers(&sock) {
        outln!(
            "collector already running (pid {})",
            pid(project).map_or("?".into(), |p| p.to_string())
        );
        return Ok(());
    }
    let exe = locate::collector()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(project.dir().join("collector.log"))
        .map_err(|e| CliError::failure(format!("cannot open the collector log: {e}")))?;
    Command::new(&exe)
        .args(["--daemon", "--socket"])
        .arg(&sock)
        .arg("--db")
        .arg(project.db_path())
        .arg("--project")
        .arg(&project.root)
        .env_remove(roar_protocol::env::PRELOAD)
        .env_remove(roar_protocol::env::SOCKET)
        .env_remove(roar_protocol::env::JOB)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own process group: the terminal's Ctrl-C is not for it.
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::failure(format!("cannot start {}: {e}", exe.display())))?;
    let deadline = Instant::now() + START_WAIT;
    while !answers(&sock) {
        if Instant::now() >= deadline {
            return Err(CliError::failure(format!(
                "the collector did not come up; see {}",
                project.dir().join("collector.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outln!("collector running on {}", sock.display());
    Ok(())
}

pub fn stop(project: &Project) -> Result<()> {
    let sock = socket(project);
    let Some(pid) = pid(project).filter(|_| answers(&sock)) else {
        outln!("no collector running");
        return Ok(());
    };
    kill(Pid::from_raw(pid), Signal::SIGTERM)
        .map_err(|e| CliError::failure(format!("cannot stop the collector (pid {pid}): {e}")))?;
    let deadline = Instant::now() + START_WAIT;
    while sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    outln!("collector stopped (running jobs were recorded as incomplete)");
    Ok(())
}

pub fn status(project: &Project) -> Result<i32> {
    let sock = socket(project);
    if answers(&sock) {
        outln!(
            "running (pid {}) on {}",
            pid(project).map_or("?".into(), |p| p.to_string()),
            sock.display()
        );
        Ok(0)
    } else {
        outln!("not running (programs under LD_PRELOAD start it when they need it)");
        Ok(3)
    }
}

/// The `export` lines a launcher needs, in sh or fish syntax.
pub fn env(project: &Project, shell: &str) -> Result<()> {
    let shim = locate::shim()?;
    let sock = socket(project);
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let preload = roar_protocol::env::PRELOAD;
    let socket_var = roar_protocol::env::SOCKET;
    match shell {
        "sh" | "bash" | "zsh" => {
            outln!("export {preload}={}", quote(&shim));
            outln!("export {socket_var}={}", quote(&sock));
        }
        "fish" => {
            outln!("set -gx {preload} {}", quote(&shim));
            outln!("set -gx {socket_var} {}", quote(&sock));
        }
        other => {
            return Err(CliError::usage(format!(
                "--shell is sh or fish, not {}",
                crate::human::safe(other)
            )))
        }
    }
    Ok(())
}
