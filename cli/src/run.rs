//! `roar run` / `roar build`: trace a command as one job.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use roar_collector::server::record_from_spool;
use roar_collector::store::{now_unix, random_hex};
use roar_protocol::{env, JobMeta, Message, Reply};

use crate::error::{CliError, Result};
use crate::project::Project;
use crate::spool::{Spool, UNKNOWN_EXIT};
use crate::{locate, signals, summary};
use roar_collector::git;

pub struct RunOptions {
    pub argv: Vec<OsString>,
    pub kind: &'static str,
    pub quiet: bool,
    pub verbose: bool,
}

/// A private folder for the collector's socket; removed when dropped. Kept
/// out of the project because socket paths are limited to ~100 bytes.
struct SocketDir(PathBuf);

impl SocketDir {
    fn create(token: &str) -> Result<SocketDir> {
        let dir = std::env::temp_dir().join(format!("roar-{}", &token[..12]));
        std::fs::create_dir(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
        Ok(SocketDir(dir))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `LD_PRELOAD` (`DYLD_INSERT_LIBRARIES` on macOS, see `env::PRELOAD`) for
/// the command: our shim first, other preloads kept, an outer roar's shim
/// (nested `roar run`) replaced. On macOS a SIP-protected command drops it:
/// `untraced::check` says so and the summary shows it.
fn preload_value(shim: &Path) -> OsString {
    let mut value = OsString::from(shim);
    if let Some(existing) = std::env::var_os(env::PRELOAD) {
        for lib in existing.to_string_lossy().split([' ', ':']) {
            if !lib.is_empty() && !lib.ends_with(locate::SHIM_FILE) {
                value.push(":");
                value.push(lib);
            }
        }
    }
    value
}

fn start_collector(project: &Project, socket: &Path, spool: &Path) -> Result<Child> {
    let exe = locate::collector()?;
    let log_path = project.dir().join("collector.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CliError::failure(format!("cannot open {}: {e}", log_path.display())))?;
    let mut child = Command::new(&exe)
        .arg("--socket")
        .arg(socket)
        .arg("--db")
        .arg(project.db_path())
        .arg("--project")
        .arg(&project.root)
        .arg("--spool")
        .arg(spool)
        .env_remove(env::PRELOAD)
        .env_remove(env::SOCKET)
        .env_remove(env::JOB)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        // Its own process group: Ctrl-C meant for the command must not stop
        // the collector before it has recorded the job.
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::failure(format!("cannot start {}: {e}", exe.display())))?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    let _ = BufReader::new(stdout).read_line(&mut line);
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let reason = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or("no reason given", |l| {
                l.trim_start_matches("roar-collector: ")
            });
        return Err(CliError::failure(format!(
            "the collector did not start: {reason} (log: {})",
            log_path.display()
        )));
    }
    Ok(child)
}

fn spawn_command(opts: &RunOptions, shim: &Path, socket: &Path, token: &str) -> Result<Child> {
    let program = &opts.argv[0];
    Command::new(program)
        .args(&opts.argv[1..])
        // ROAR_NO_TELEMETRY=1 when the user turned telemetry off, for any
        // roar the job (or a worker it starts) runs.
        .envs(crate::telemetry::job_env())
        .env(env::PRELOAD, preload_value(shim))
        .env(env::SOCKET, socket)
        .env(env::JOB, token)
        .spawn()
        .map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            CliError::new(
                code,
                format!("cannot run {}: {e}", program.to_string_lossy()),
            )
        })
}

/// The shell's convention: the exit code, or 128+N when killed by signal N.
fn exit_status(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Asks the collector to record the job and waits for its answer, showing
/// a progress bar on a terminal when the last hashing takes over a second.
fn finish_job(
    socket: &Path,
    meta: JobMeta,
    show_progress: bool,
) -> std::result::Result<Reply, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    let frame = roar_protocol::encode(&Message::FinishJob(meta)).map_err(|e| e.to_string())?;
    stream
        .write_all(&roar_protocol::preamble())
        .and_then(|()| stream.write_all(&frame))
        .map_err(|e| e.to_string())?;
    let asked = std::time::Instant::now();
    let show = show_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut payload = Vec::new();
    loop {
        let reply: Reply = match roar_protocol::read_frame(&mut stream, &mut payload) {
            Ok(true) => roar_protocol::decode(&payload).map_err(|e| e.to_string())?,
            Ok(false) => return Err("it closed the connection".into()),
            Err(e) => return Err(e.to_string()),
        };
        let Reply::Progress {
            hashed_bytes,
            total_bytes,
            hashed_files,
            total_files,
        } = reply
        else {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Ok(reply);
        };
        if show && bar.is_none() && asked.elapsed() >= std::time::Duration::from_secs(1) {
            let b = indicatif::ProgressBar::new(total_bytes);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "roar: hashing {bar:30} {bytes}/{total_bytes} {msg} {bytes_per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar = Some(b);
        }
        if let Some(b) = &bar {
            // Files closed just before the end, then those never closed.
            b.set_length(total_bytes);
            b.set_position(hashed_bytes);
            b.set_message(format!("({hashed_files}/{total_files} files)"));
        }
    }
}

/// Runs the command traced; returns the command's exit status.
pub fn run(opts: RunOptions) -> Result<i32> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::failure(format!("cannot read the current directory: {e}")))?;
    let project = Project::find(&cwd)?;
    crate::spool::recover_orphans(&project);
    roar_collector::config::Config::load(&project.config_path()).map_err(CliError::usage)?;
    let shim = locate::shim()?;
    let token = random_hex(16);
    let socket_dir = SocketDir::create(&token)?;
    let socket = socket_dir.0.join("collector.sock");

    let git_cwd = cwd.clone();
    let git = std::thread::spawn(move || git::info(&git_cwd));
    // A copy of everything the collector receives, so that its death
    // mid-run loses only what was sent after it.
    let spool = Spool::create(&project, &token)?;
    let mut collector = match start_collector(&project, &socket, &spool.dir) {
        Ok(c) => c,
        Err(e) => {
            spool.remove();
            return Err(e);
        }
    };
    let forwarder = signals::Forwarder::install()
        .map_err(|e| CliError::failure(format!("cannot install signal handlers: {e}")))?;

    let root_untraced = crate::untraced::check(&opts.argv[0]);
    let started_at = now_unix();
    let mut child = match spawn_command(&opts, &shim, &socket, &token) {
        Ok(c) => c,
        Err(e) => {
            let _ = collector.kill();
            let _ = collector.wait();
            spool.remove();
            return Err(e);
        }
    };
    let root_pid = child.id();
    forwarder.forward_to(root_pid);
    let mut meta = JobMeta {
        job_token: token,
        kind: opts.kind.to_string(),
        argv: opts
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        cwd: cwd.to_string_lossy().into_owned(),
        started_at,
        ended_at: started_at,
        exit_status: UNKNOWN_EXIT,
        root_pid: root_pid as i32,
        git: None,
        root_untraced,
    };
    spool.write_meta(&meta);
    let status = child
        .wait()
        .map_err(|e| CliError::failure(format!("cannot wait for the command: {e}")))?;
    let ended_at = now_unix();
    let exit_status = exit_status(status);

    meta.ended_at = ended_at;
    meta.exit_status = exit_status;
    meta.git = git.join().ok().flatten();
    let reply = finish_job(&socket, meta.clone(), !opts.quiet);
    // Once it answered, the collector only checkpoints its database and
    // exits: nothing to wait for. Without an answer, it is reaped first.
    if reply.is_err() {
        let _ = collector.wait();
    }
    let log = project.dir().join("collector.log");
    let recorded = match reply {
        Ok(Reply::Recorded { job_id, .. }) => Some(job_id),
        Ok(Reply::Failed { reason }) => {
            eprintln!("roar: the job was not recorded: {reason}");
            None
        }
        // finish_job returns only a final answer.
        Ok(Reply::Progress { .. }) => None,
        Err(e) => {
            let root = Some(project.root.clone());
            match record_from_spool(&spool.dir, &project.db_path(), &root, meta) {
                Ok(job) => Some(job.id),
                Err(why) => {
                    eprintln!(
                        "roar: the job was not recorded: the collector stopped ({e}) and its spool \
                         could not be read ({why}); see {}",
                        log.display()
                    );
                    None
                }
            }
        }
    };
    if let (Some(job_id), false) = (recorded, opts.quiet) {
        let store = project.open_store()?;
        summary::print(&store, job_id, &project.root, opts.verbose)?;
    }
    Ok(exit_status)
}
