//! Launcher mode: one collector per project, serving every job whose
//! processes find it (`LD_PRELOAD=libroar.so` without `roar run`). A job is
//! the processes sharing a job token; it is recorded once the last of them
//! has gone (after a short grace, for children still starting). The daemon
//! exits after `collector.idle_timeout_s` without jobs, or on SIGTERM, and
//! removes its socket and pid file.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError};
use roar_protocol::JobMeta;

use crate::assemble::Assembler;
use crate::config::Config;
use crate::hashing::EarlyHasher;
use crate::intake::Intake;
use crate::reader::{ConnId, Input};
use crate::server::{
    open_store, project_settings, record, Settings, CHANNEL_CAPACITY, EARLY_HASH_WORKERS,
};
use crate::store::now_unix;
use crate::writer::Writer;

/// A job's processes may all be gone for this long before it is recorded:
/// a forked child connects only once it runs (or execs).
const SETTLE: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(200);

pub struct DaemonOptions {
    pub socket: PathBuf,
    pub db: PathBuf,
    pub project_root: PathBuf,
}

/// The pid file beside the socket.
pub fn pid_file(socket: &Path) -> PathBuf {
    socket.with_file_name("collector.pid")
}

/// Beside the socket when the daemon could not start, with the reason:
/// starters seeing a fresh one do not try (and wait) again.
pub fn failed_file(socket: &Path) -> PathBuf {
    socket.with_file_name("collector.failed")
}

struct Job {
    asm: Assembler,
    early: EarlyHasher,
    started_at: f64,
    /// Since when no process of the job is connected.
    quiet_since: Option<Instant>,
}

/// Binds the socket, replacing a stale one (a socket file nobody answers
/// on: a crashed daemon's). Another live daemon is an error.
fn bind(socket: &Path) -> Result<UnixListener, String> {
    if socket.exists() {
        if UnixStream::connect(socket).is_ok() {
            return Err(format!(
                "a collector already answers on {}",
                socket.display()
            ));
        }
        let _ = std::fs::remove_file(socket);
    }
    let listener = UnixListener::bind(socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    // Private to the user: lineage and file names are nobody else's business.
    let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600));
    Ok(listener)
}

/// Whether the peer runs as our user (SO_PEERCRED).
#[cfg(not(target_os = "macos"))]
fn same_user(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).is_ok_and(|c| c.uid() == nix::unistd::getuid().as_raw())
}

/// Whether the peer runs as our user (LOCAL_PEERCRED).
#[cfg(target_os = "macos")]
fn same_user(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::LocalPeerCred};
    getsockopt(stream, LocalPeerCred).is_ok_and(|c| c.uid() == nix::unistd::getuid().as_raw())
}

fn conn_of(input: &Input) -> Option<ConnId> {
    match input {
        Input::Opened(id)
        | Input::Hello(id, _)
        | Input::Open(id, ..)
        | Input::File(id, ..)
        | Input::Close(id, _)
        | Input::Exit(id, _)
        | Input::Untraced(id, ..)
        | Input::Finish(id, ..)
        | Input::Closed(id) => Some(*id),
        Input::Warning(_) => None,
    }
}

struct Daemon<'a> {
    opts: &'a DaemonOptions,
    settings: Settings,
    writer: Arc<Writer>,
    /// Jobs being recorded, each on its own thread: recording one (hashing,
    /// git, the database) must not hold up the others' events.
    recorders: Vec<std::thread::JoinHandle<()>>,
    jobs: HashMap<Vec<u8>, Job>,
    conn_job: HashMap<ConnId, Vec<u8>>,
    /// Connections accepted whose hello has not come yet.
    pending: HashSet<ConnId>,
}

impl Daemon<'_> {
    fn route(&mut self, input: Input) -> Result<(), String> {
        let Some(id) = conn_of(&input) else {
            if let Input::Warning(w) = input {
                eprintln!("roar-collector: {w}");
            }
            return Ok(());
        };
        match input {
            Input::Opened(_) => {
                self.pending.insert(id);
            }
            Input::Hello(_, hello) => {
                let token = hello.job_token.clone();
                if !self.jobs.contains_key(&token) {
                    // The configuration as it is now; if it has become
                    // unreadable, the one the daemon started with.
                    let filter = project_settings(&Some(self.opts.project_root.clone()), vec![])
                        .map(|s| s.filter)
                        .unwrap_or_else(|e| {
                            eprintln!("roar-collector: {e}; keeping the earlier configuration");
                            self.settings.filter.clone()
                        });
                    self.jobs.insert(
                        token.clone(),
                        Job {
                            asm: Assembler::new(filter),
                            early: EarlyHasher::start(&self.opts.db, EARLY_HASH_WORKERS),
                            started_at: now_unix(),
                            quiet_since: None,
                        },
                    );
                }
                let job = self.jobs.get_mut(&token).expect("inserted above");
                if self.pending.remove(&id) {
                    job.asm.apply(Input::Opened(id));
                }
                job.asm.apply(Input::Hello(id, hello));
                job.quiet_since = None;
                self.conn_job.insert(id, token);
            }
            // Only `roar run` sends these; a launcher job has no one to answer.
            Input::Finish(..) => {}
            input => {
                let closed = matches!(input, Input::Closed(_));
                let token = if closed {
                    self.pending.remove(&id);
                    self.conn_job.remove(&id)
                } else {
                    self.conn_job.get(&id).cloned()
                };
                if let Some(job) = token.and_then(|t| self.jobs.get_mut(&t)) {
                    job.asm.apply(input);
                    for hint in job.asm.take_hints() {
                        job.early.hint(hint);
                    }
                }
            }
        }
        Ok(())
    }

    /// Records every job whose processes have all been gone long enough
    /// (all of them when `now` is forced, marked incomplete).
    fn settle(&mut self, force: bool) {
        let now = Instant::now();
        let done: Vec<Vec<u8>> = self
            .jobs
            .iter_mut()
            .filter_map(|(token, job)| {
                if job.asm.open_process_conns() > 0 && !force {
                    job.quiet_since = None;
                    return None;
                }
                let since = *job.quiet_since.get_or_insert(now);
                (force || now.duration_since(since) >= SETTLE).then(|| token.clone())
            })
            .collect();
        self.recorders.retain(|r| !r.is_finished());
        for token in done {
            let job = self.jobs.remove(&token).expect("listed above");
            let (db, writer) = (self.opts.db.clone(), self.writer.clone());
            let datasets = self.settings.datasets.clone();
            self.recorders.push(std::thread::spawn(move || {
                if let Err(e) = finish(&token, job, force, &db, &writer, &datasets) {
                    eprintln!("roar-collector: {e}");
                }
            }));
        }
    }
}

/// Records one finished job.
fn finish(
    token: &[u8],
    job: Job,
    incomplete: bool,
    db: &Path,
    writer: &Writer,
    datasets: &Option<Option<PathBuf>>,
) -> Result<(), String> {
    {
        let Some((root_pid, hello, exit)) = job.asm.root() else {
            return Ok(()); // nobody said hello: nothing to record
        };
        let cwd = String::from_utf8_lossy(&hello.cwd).into_owned();
        let meta = JobMeta {
            job_token: String::from_utf8_lossy(token).into_owned(),
            kind: "run".into(),
            argv: hello
                .argv
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
            git: crate::git::info(Path::new(&cwd)),
            cwd,
            started_at: job.started_at,
            // When its last process went, not when the grace ran out.
            ended_at: now_unix() - job.quiet_since.map_or(0.0, |q| q.elapsed().as_secs_f64()),
            // Nobody waited for the root: only its own exit call tells.
            exit_status: exit.unwrap_or(-1),
            root_pid,
            root_untraced: None,
        };
        let early = job.early.finish();
        record(
            job.asm,
            meta,
            early,
            db,
            writer,
            (incomplete, datasets),
            &|_| {},
        )
        .map(|_| ())
    }
}

pub fn serve_daemon(opts: &DaemonOptions) -> Result<(), String> {
    let writer = Writer::start(open_store(&opts.db)?, opts.db.display().to_string());
    let config = Config::load(&opts.project_root.join(".roar/config.toml"))?;
    let idle = config
        .count("collector.idle_timeout_s")
        .map(|s| Duration::from_secs(s.into()));
    let listener = bind(&opts.socket)?;
    let _ = std::fs::remove_file(failed_file(&opts.socket));
    let pid_file = pid_file(&opts.socket);
    let _ = std::fs::write(&pid_file, format!("{}\n", std::process::id()));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }

    let (tx, rx) = bounded::<Input>(CHANNEL_CAPACITY);
    let intake =
        Intake::new(listener, tx, None).map_err(|e| format!("cannot watch the socket: {e}"))?;
    std::thread::spawn(move || {
        intake.run(|stream| {
            let ok = same_user(stream);
            if !ok {
                eprintln!("roar-collector: refused a connection from another user");
            }
            ok
        })
    });
    let mut d = Daemon {
        opts,
        settings: project_settings(&Some(opts.project_root.clone()), vec![])?,
        writer: Arc::new(writer),
        recorders: Vec::new(),
        jobs: HashMap::new(),
        conn_job: HashMap::new(),
        pending: HashSet::new(),
    };
    let mut last_busy = Instant::now();
    let result = loop {
        match rx.recv_timeout(TICK) {
            Ok(input) => {
                if let Err(e) = d.route(input) {
                    break Err(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        }
        d.settle(false);
        if !d.jobs.is_empty() || !d.pending.is_empty() {
            last_busy = Instant::now();
        }
        if stop.load(Ordering::Relaxed) || idle.is_some_and(|i| last_busy.elapsed() >= i) {
            break Ok(());
        }
    };
    // New processes start a new collector from here on; what already
    // arrived is routed, and jobs still running are recorded with it, as
    // incomplete.
    let _ = std::fs::remove_file(&opts.socket);
    while let Ok(input) = rx.try_recv() {
        let _ = d.route(input);
    }
    d.settle(true);
    for r in d.recorders.drain(..) {
        let _ = r.join();
    }
    let _ = std::fs::remove_file(&pid_file);
    result
}
