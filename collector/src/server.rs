//! The collector of one `roar run`: listens on a private socket, assembles
//! the job's events, and records the job when roar asks.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError};
use roar_protocol::{JobMeta, Reply};

use crate::assemble::Assembler;
use std::collections::HashMap;

use roar_protocol::access;

use crate::classify::FileEvent;
use crate::config::Config;
use crate::filter::Filter;
use crate::hash::{Hashed, Prehasher};
use crate::reader::{read_connection, Input};
use crate::store::{Job, Store};

/// Inputs in flight between readers and the assembler; a full channel slows
/// the readers (and, through the socket buffers, the shims), never drops.
const CHANNEL_CAPACITY: usize = 16 * 1024;
/// Threads hashing inputs while the job runs.
const PREHASH_WORKERS: usize = 2;

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
    /// Where to keep a copy of every frame received (see [`crate::spool`]).
    pub spool: Option<PathBuf>,
}

/// The filter a project's configuration asks for; `extra_roar_dirs` are
/// roar's own folders outside the project (the socket's).
fn project_filter(
    project_root: &Option<PathBuf>,
    extra_roar_dirs: Vec<PathBuf>,
) -> Result<Filter, String> {
    let mut roar_dirs = extra_roar_dirs;
    if let Some(root) = project_root {
        roar_dirs.push(root.join(".roar"));
    }
    let config = match project_root {
        Some(root) => Config::load(&root.join(".roar/config.toml"))?,
        None => Config::default(),
    };
    Ok(Filter::new(project_root.clone(), roar_dirs, &config))
}

/// Builds the job from what the assembler holds and writes it.
fn record(
    asm: &Assembler,
    meta: JobMeta,
    filter: &Filter,
    store: Store,
    db: &Path,
    prehashed: &HashMap<Vec<u8>, Hashed>,
    incomplete: bool,
) -> Result<Job, String> {
    let store = Mutex::new(store);
    let mut job = asm.build_job(meta, filter, &store, prehashed);
    job.stats.collector_peak_rss_kb = peak_rss_kb();
    job.stats.incomplete = incomplete;
    let recorded = store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record_job(&job);
    recorded.map_err(|e| format!("cannot write the job to {}: {e}", db.display()))
}

/// Records the job a dead collector was assembling, from its spool, marked
/// incomplete: events sent after the collector died are missing.
pub fn record_from_spool(
    spool: &Path,
    db: &Path,
    project_root: &Option<PathBuf>,
    meta: JobMeta,
) -> Result<Job, String> {
    let store =
        Store::open(db).map_err(|e| format!("cannot open database {}: {e}", db.display()))?;
    let filter = project_filter(project_root, vec![])?;
    let mut asm = Assembler::default();
    let inputs = crate::spool::replay(spool)
        .map_err(|e| format!("cannot read the spool {}: {e}", spool.display()))?;
    for input in inputs {
        asm.apply(input);
    }
    let mut store_meta = meta;
    store_meta.job_token.clear(); // every spooled process belongs to this job
    let job = record(&asm, store_meta, &filter, store, db, &HashMap::new(), true)?;
    let _ = std::fs::remove_dir_all(spool);
    Ok(job)
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
    let socket_dir = opts.socket.parent().map(Path::to_path_buf);
    let filter = project_filter(&opts.project_root, socket_dir.into_iter().collect())?;

    let (tx, rx) = bounded::<Input>(CHANNEL_CAPACITY);
    let acceptor_tx = tx.clone();
    let spool = opts.spool.clone();
    std::thread::spawn(move || {
        for (id, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let id = id as u64;
            if acceptor_tx.send(Input::Opened(id)).is_err() {
                return;
            }
            let reader_tx = acceptor_tx.clone();
            let spool = spool.clone();
            std::thread::spawn(move || read_connection(id, stream, reader_tx, spool.as_deref()));
        }
    });
    drop(tx);
    println!("ready");
    let _ = std::io::stdout().flush();

    let mut asm = Assembler::default();
    let mut prehash = Prehasher::start(&opts.db, PREHASH_WORKERS);
    let mut finish: Option<(JobMeta, UnixStream, Instant)> = None;
    loop {
        let input = match &finish {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some((_, _, deadline)) => rx.recv_deadline(*deadline),
        };
        match input {
            Ok(input) => {
                if let Input::File(_, _, FileEvent::Open { path, access: a }) = &input {
                    let read_only = a & access::READ != 0 && a & access::WRITE == 0;
                    if read_only && a & access::DIRECTORY == 0 && filter.drop_reason(path).is_none()
                    {
                        prehash.submit(path);
                    }
                }
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
    let prehashed = prehash.finish();
    let reply = match record(&asm, meta, &filter, store, &opts.db, &prehashed, false) {
        Ok(j) => {
            if let Some(spool) = &opts.spool {
                let _ = std::fs::remove_dir_all(spool);
            }
            Reply::Recorded {
                job_id: j.id,
                step: j.step,
                uid: j.uid,
            }
        }
        Err(reason) => Reply::Failed { reason },
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
