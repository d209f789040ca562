use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use roar_collector::daemon::{serve_daemon, DaemonOptions};
use roar_collector::server::{serve_one_job, Options};

const USAGE: &str =
    "usage: roar-collector --socket PATH --db PATH [--project DIR] [--spool DIR] [--grace-ms N]\n\
     \x20      roar-collector --daemon --socket PATH --db PATH --project DIR\n\
                     (started by `roar run`, `roar collector start` or libroar; not meant to be run by hand)";

enum Mode {
    OneJob(Options),
    Daemon(DaemonOptions),
}

fn parse(args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut socket = None;
    let mut db = None;
    let mut project_root = None;
    let mut grace = Duration::from_millis(500);
    let mut spool = None;
    let mut daemon = false;
    let mut args = args;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--db" => db = Some(PathBuf::from(value()?)),
            "--project" => project_root = Some(PathBuf::from(value()?)),
            "--spool" => spool = Some(PathBuf::from(value()?)),
            "--daemon" => daemon = true,
            "--grace-ms" => {
                let v = value()?;
                let ms = v
                    .parse()
                    .map_err(|_| format!("--grace-ms: not a number: {v}"))?;
                grace = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let socket = socket.ok_or("--socket is required")?;
    let db = db.ok_or("--db is required")?;
    if daemon {
        return Ok(Mode::Daemon(DaemonOptions {
            socket,
            db,
            project_root: project_root.ok_or("--daemon needs --project")?,
        }));
    }
    Ok(Mode::OneJob(Options {
        socket,
        db,
        project_root,
        grace,
        spool,
    }))
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("roar-collector: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    let served = match &opts {
        Mode::OneJob(o) => serve_one_job(o),
        Mode::Daemon(o) => serve_daemon(o).inspect_err(|e| {
            // Told to the next starter, so it does not wait for us in vain.
            let _ = std::fs::write(
                roar_collector::daemon::failed_file(&o.socket),
                format!("{e}\n"),
            );
        }),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roar-collector: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every traced process holds a connection (an fd here) while it runs: the
/// soft limit (often 1,024) is raised to the hard one, as far as it goes.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
