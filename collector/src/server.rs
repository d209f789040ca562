//! The collector of one `roar run`: listens on a private socket, assembles
//! the job's events, and records the job when roar asks.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError};
use roar_protocol::{JobMeta, Reply};

use crate::assemble::Assembler;
use crate::config::Config;
use crate::filter::Filter;
use crate::hashing::{hash_job, EarlyHasher, EarlyHashes, Progress};
use crate::intake::Intake;
use crate::reader::Input;
use crate::spool::Spool;
use crate::store::{Job, Store};
use crate::writer::Writer;

/// Inputs in flight between readers and the assembler; a full channel slows
/// the readers (and, through the socket buffers, the shims), never drops.
/// Every slot is written when the channel is made, so its size is paid at
/// every start: 4,096 slots of ~72 bytes. (16,384 slots of 248 bytes were
/// ~1,000 page faults, most of the collector's start-up time.)
pub(crate) const CHANNEL_CAPACITY: usize = 4 * 1024;
/// Threads hashing files while the job runs.
pub(crate) const EARLY_HASH_WORKERS: usize = 2;

/// Peak resident set size of this process in KiB, from getrusage: its
/// ru_maxrss is in bytes on macOS (0 when unknown).
#[cfg(target_os = "macos")]
fn peak_rss_kb() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0) / 1024)
}

/// VmHWM of this process, from /proc (0 where there is none).
#[cfg(not(target_os = "macos"))]
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

/// What a project's configuration asks of the collector.
pub(crate) struct Settings {
    pub(crate) filter: Filter,
    /// Dataset-shaped output folders are labelled; never the project root.
    pub(crate) datasets: Option<Option<PathBuf>>,
}

/// `extra_roar_dirs` are roar's own folders outside the project (the socket's).
pub(crate) fn project_settings(
    project_root: &Option<PathBuf>,
    extra_roar_dirs: Vec<PathBuf>,
) -> Result<Settings, String> {
    let mut roar_dirs = extra_roar_dirs;
    if let Some(root) = project_root {
        roar_dirs.push(root.join(".roar"));
    }
    let config = match project_root {
        Some(root) => Config::load(&root.join(".roar/config.toml"))?,
        None => Config::default(),
    };
    Ok(Settings {
        filter: Filter::new(project_root.clone(), roar_dirs, &config),
        datasets: config
            .bool("labels.auto_dataset_detect")
            .then(|| project_root.clone()),
    })
}

/// Hashes and writes the job `meta` names from what the assembler holds.
pub(crate) fn record(
    asm: Assembler,
    meta: JobMeta,
    early: EarlyHashes,
    db: &Path,
    writer: &Writer,
    (incomplete, datasets): (bool, &Option<Option<PathBuf>>),
    report: &(dyn Fn(Progress) + Sync),
) -> Result<Job, String> {
    let draft = asm.draft(meta);
    drop(asm);
    let reader = open_store(db)?;
    let mut job = hash_job(draft, early, reader, report);
    if let Some(project_root) = datasets {
        job.datasets = crate::datasets::detect(&job.outputs, project_root.as_deref());
    }
    job.stats.collector_peak_rss_kb = peak_rss_kb();
    job.stats.incomplete = incomplete;
    writer.record(job)
}

pub(crate) fn open_store(db: &Path) -> Result<Store, String> {
    Store::open(db).map_err(|e| format!("cannot open database {}: {e}", db.display()))
}

/// Records the job a dead collector was assembling, from its spool, marked
/// incomplete: events sent after the collector died are missing.
pub fn record_from_spool(
    spool: &Path,
    db: &Path,
    project_root: &Option<PathBuf>,
    meta: JobMeta,
) -> Result<Job, String> {
    let writer = Writer::start(open_store(db)?, db.display().to_string());
    let settings = project_settings(project_root, vec![])?;
    let mut asm = Assembler::new(settings.filter);
    crate::spool::replay(spool, |input| {
        asm.apply(input);
    })
    .map_err(|e| format!("cannot read the spool {}: {e}", spool.display()))?;
    let mut store_meta = meta;
    store_meta.job_token.clear(); // every spooled process belongs to this job
    let job = record(
        asm,
        store_meta,
        EarlyHashes::default(),
        db,
        &writer,
        (true, &settings.datasets),
        &|_| {},
    )?;
    let _ = std::fs::remove_dir_all(spool);
    Ok(job)
}

/// Hashing at the end of a job is worth telling roar about from this size.
const PROGRESS_FROM_BYTES: u64 = 64 << 20;
/// At most one progress frame per this long.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Sends `Reply::Progress` frames to roar while a large job's files are
/// hashed; small jobs send none.
struct ProgressReporter {
    stream: Option<std::sync::Mutex<(UnixStream, Option<Instant>)>>,
}

impl ProgressReporter {
    fn new(reply_to: &UnixStream) -> ProgressReporter {
        ProgressReporter {
            stream: reply_to
                .try_clone()
                .ok()
                .map(|s| std::sync::Mutex::new((s, None))),
        }
    }

    fn report(&self, p: Progress) {
        let Some(m) = &self.stream else { return };
        if p.total_bytes < PROGRESS_FROM_BYTES {
            return;
        }
        let mut guard = m.lock().unwrap_or_else(|e| e.into_inner());
        let (stream, last) = &mut *guard;
        let finished = p.hashed_files == p.total_files;
        if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) && !finished {
            return;
        }
        *last = Some(Instant::now());
        let reply = Reply::Progress {
            hashed_bytes: p.hashed_bytes,
            total_bytes: p.total_bytes,
            hashed_files: p.hashed_files,
            total_files: p.total_files,
        };
        if let Ok(frame) = roar_protocol::encode(&reply) {
            let _ = stream.write_all(&frame);
        }
    }
}

/// Serves until one job is recorded. Prints `ready` on stdout once clients
/// can connect.
pub fn serve_one_job(opts: &Options) -> Result<(), String> {
    let store = open_store(&opts.db)?;
    store
        .defer_checkpoints()
        .map_err(|e| format!("cannot set up {}: {e}", opts.db.display()))?;
    let writer = Writer::start(store, opts.db.display().to_string());
    let _ = std::fs::remove_file(&opts.socket);
    let listener = UnixListener::bind(&opts.socket)
        .map_err(|e| format!("cannot listen on {}: {e}", opts.socket.display()))?;
    let _ = std::fs::set_permissions(&opts.socket, std::fs::Permissions::from_mode(0o600));
    let socket_dir = opts.socket.parent().map(Path::to_path_buf);
    let settings = project_settings(&opts.project_root, socket_dir.into_iter().collect())?;

    let (tx, rx) = bounded::<Input>(CHANNEL_CAPACITY);
    let acceptor_tx = tx.clone();
    // Without a spool the job is still recorded, only not crash-safe.
    let spool = opts
        .spool
        .as_ref()
        .and_then(|dir| match Spool::create(dir) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("roar-collector: no spool in {}: {e}", dir.display());
                None
            }
        });
    let intake = Intake::new(listener, acceptor_tx, spool)
        .map_err(|e| format!("cannot watch {}: {e}", opts.socket.display()))?;
    std::thread::spawn(move || intake.run(|_| true));
    drop(tx);
    println!("ready");
    let _ = std::io::stdout().flush();

    let mut asm = Assembler::new(settings.filter);
    let early = EarlyHasher::start(&opts.db, EARLY_HASH_WORKERS);
    let mut finish: Option<(JobMeta, UnixStream, Instant)> = None;
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
                for hint in asm.take_hints() {
                    early.hint(hint);
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
    let flags = (false, &settings.datasets);
    let reporter = ProgressReporter::new(&reply_to);
    let report = |p: Progress| reporter.report(p);
    let early = early.finish_reporting(&report);
    let reply = match record(asm, meta, early, &opts.db, &writer, flags, &report) {
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
        Reply::Failed { reason } => Err(reason),
        _ => Ok(()),
    }
}
