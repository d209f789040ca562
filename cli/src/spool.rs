//! The spool folder of a running job (`.roar/spool/<token>/`): the
//! collector's copy of every frame, the job's metadata, and a lock held by
//! the `roar run` that owns it. A spool whose lock is free belongs to a run
//! that died with its collector; any later roar command records it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use roar_collector::server::record_from_spool;
use roar_collector::store::Job;
use roar_protocol::{JobMeta, Message};

use crate::error::{CliError, Result};
use crate::project::Project;

const LOCK: &str = "owner.lock";
const META: &str = "meta.frame";

/// Exit status recorded for a job whose command's end nobody saw.
pub const UNKNOWN_EXIT: i32 = -1;

pub struct Spool {
    pub dir: PathBuf,
    _lock: Flock<File>,
}

fn spools(project: &Project) -> PathBuf {
    project.dir().join("spool")
}

impl Spool {
    pub fn create(project: &Project, token: &str) -> Result<Spool> {
        let dir = spools(project).join(token);
        let fail = |e: &dyn std::fmt::Display| {
            CliError::failure(format!("cannot create {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .map_err(|e| fail(&e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| fail(&e))?;
        Ok(Spool { dir, _lock: lock })
    }

    /// What a later recovery needs to know about the job.
    pub fn write_meta(&self, meta: &JobMeta) {
        if let Ok(frame) = roar_protocol::encode(&Message::FinishJob(meta.clone())) {
            let _ = std::fs::write(self.dir.join(META), frame);
        }
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_meta(dir: &Path) -> Option<JobMeta> {
    let bytes = std::fs::read(dir.join(META)).ok()?;
    let mut payload = Vec::new();
    roar_protocol::read_frame(&mut &bytes[..], &mut payload).ok()?;
    match roar_protocol::decode::<Message>(&payload).ok()? {
        Message::FinishJob(meta) => Some(meta),
        _ => None,
    }
}

/// Records the jobs of runs that died together with their collector.
pub fn recover_orphans(project: &Project) -> Vec<Job> {
    let Ok(entries) = std::fs::read_dir(spools(project)) else {
        return vec![];
    };
    let mut recovered = Vec::new();
    for dir in entries.flatten().map(|e| e.path()) {
        let Ok(lock_file) = OpenOptions::new().write(true).open(dir.join(LOCK)) else {
            continue;
        };
        // Held: its roar run is alive and will record the job itself.
        let Ok(_lock) = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let Some(meta) = read_meta(&dir) else {
            continue;
        };
        let root = Some(project.root.clone());
        match record_from_spool(&dir, &project.db_path(), &root, meta) {
            Ok(job) => {
                eprintln!(
                    "roar: recorded an interrupted run as @{} (incomplete: roar and its collector stopped during it)",
                    job.step
                );
                recovered.push(job);
            }
            Err(e) => eprintln!(
                "roar: cannot recover the interrupted run in {}: {e}",
                dir.display()
            ),
        }
    }
    recovered
}
