//! The collector of one `roar run`: listens on a private socket, assembles
//! the job's events, and records the job when roar asks.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError};
use roar_protocol::Reply;

use crate::assemble::Assembler;
use crate::config::Config;
use crate::filter::Filter;
use crate::reader::{read_connection, Input};
use crate::store::Store;

/// Inputs in flight between readers and the assembler; a full channel slows
/// the readers (and, through the socket buffers, the shims), never drops.
const CHANNEL_CAPACITY: usize = 16 * 1024;

/// VmHWM of this process, from /proc (0 where there is none).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub struct Options {
    pub socket: PathBuf,
    pub db: PathBuf,
    pub project_root: Option<PathBuf>,
    /// How long processes still running after the root exits may keep sending.
    pub grace: Duration,
}

/// Serves until one job is recorded. Prints `ready` on stdout once clients
/// can connect.
pub fn serve_one_job(opts: &Options) -> Result<(), String> {
    let store = Store::open(&opts.db)
        .map_err(|e| format!("cannot open database {}: {e}", opts.db.display()))?;
    let _ = std::fs::remove_file(&opts.socket);
    let listener = UnixListener::bind(&opts.socket)
        .map_err(|e| format!("cannot listen on {}: {e}", opts.socket.display()))?;
    let _ = std::fs::set_permissions(&opts.socket, std::fs::Permissions::from_mode(0o600));
    let mut roar_dirs = vec![];
    if let Some(dir) = opts.socket.parent() {
        roar_dirs.push(dir.to_path_buf());
    }
    if let Some(root) = &opts.project_root {
        roar_dirs.push(root.join(".roar"));
    }
    let config = match &opts.project_root {
        Some(root) => Config::load(&root.join(".roar/config.toml"))?,
        None => Config::default(),
    };
    let filter = Filter::new(opts.project_root.clone(), roar_dirs, &config);

    let (tx, rx) = bounded::<Input>(CHANNEL_CAPACITY);
    let acceptor_tx = tx.clone();
    std::thread::spawn(move || {
        for (id, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let id = id as u64;
            if acceptor_tx.send(Input::Opened(id)).is_err() {
                return;
            }
            let reader_tx = acceptor_tx.clone();
            std::thread::spawn(move || read_connection(id, stream, reader_tx));
        }
    });
    drop(tx);
    println!("ready");
    let _ = std::io::stdout().flush();

    let mut asm = Assembler::default();
    let mut finish: Option<(roar_protocol::JobMeta, UnixStream, Instant)> = None;
    loop {
        let input = match &finish {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some((_, _, deadline)) => rx.recv_deadline(*deadline),
        };
        match input {
            Ok(input) => {
                if let Some((meta, stream)) = asm.apply(input) {
                    finish = Some((meta, stream, Instant::now() + opts.grace));
                }
            }
            Err(_) => break,
        }
        if finish.is_some() && asm.open_process_conns() == 0 {
            break;
        }
    }
    let Some((meta, mut reply_to, _)) = finish else {
        return Err("all clients left before the job was finished".into());
    };
    let store = Mutex::new(store);
    let mut job = asm.build_job(meta, &filter, &store);
    job.stats.collector_peak_rss_kb = peak_rss_kb();
    let reply = match store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record_job(&job)
    {
        Ok(j) => Reply::Recorded {
            job_id: j.id,
            step: j.step,
            uid: j.uid,
        },
        Err(e) => Reply::Failed {
            reason: format!("cannot write the job to {}: {e}", opts.db.display()),
        },
    };
    let frame = roar_protocol::encode(&reply).map_err(|e| e.to_string())?;
    reply_to
        .write_all(&frame)
        .map_err(|e| format!("cannot answer roar: {e}"))?;
    match reply {
        Reply::Recorded { .. } => Ok(()),
        Reply::Failed { reason } => Err(reason),
    }
}
