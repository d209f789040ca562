use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use roar_collector::server::{serve_one_job, Options};

const USAGE: &str =
    "usage: roar-collector --socket PATH --db PATH [--project DIR] [--spool DIR] [--grace-ms N]\n\
                     (started by `roar run`; not meant to be run by hand)";

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut socket = None;
    let mut db = None;
    let mut project_root = None;
    let mut grace = Duration::from_millis(500);
    let mut spool = None;
    let mut args = args;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--db" => db = Some(PathBuf::from(value()?)),
            "--project" => project_root = Some(PathBuf::from(value()?)),
            "--spool" => spool = Some(PathBuf::from(value()?)),
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
    Ok(Options {
        socket: socket.ok_or("--socket is required")?,
        db: db.ok_or("--db is required")?,
        project_root,
        grace,
        spool,
    })
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("roar-collector: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve_one_job(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roar-collector: {e}");
            ExitCode::FAILURE
        }
    }
}
