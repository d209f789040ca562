//! Resolving what the user names: `@N`, a job uid prefix, an artifact path
//! or an artifact hash prefix.

use std::path::{Component, Path, PathBuf};

use roar_collector::store::{Artifact, Job, Store};

use crate::error::{CliError, Result};

pub enum Target {
    Job(Box<Job>),
    Artifact(Artifact),
}

/// `path` made absolute against `cwd` and normalised lexically (`.`/`..`).
pub fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in cwd.join(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn active_session_id(store: &Store) -> Result<i64> {
    store
        .active_session()?
        .map(|s| s.id)
        .ok_or_else(|| CliError::usage("no jobs recorded yet; record one with `roar run COMMAND`"))
}

pub fn job_by_step(store: &Store, step: &str) -> Result<Job> {
    let n: i64 = step
        .parse()
        .map_err(|_| CliError::usage(format!("@{step}: a step is @ followed by a number")))?;
    store
        .job_by_step(active_session_id(store)?, n)?
        .ok_or_else(|| CliError::usage(format!("no step @{n} in this session; see `roar log`")))
}

fn ambiguous(what: &str, candidates: Vec<String>) -> CliError {
    CliError::usage(format!(
        "{what} is ambiguous; it matches: {}",
        candidates.join(", ")
    ))
}

pub fn resolve(store: &Store, cwd: &Path, name: &str) -> Result<Target> {
    if let Some(step) = name.strip_prefix('@') {
        return job_by_step(store, step).map(|j| Target::Job(Box::new(j)));
    }
    let path = absolute(cwd, Path::new(name));
    if name.contains('/') || path.exists() {
        use std::os::unix::ffi::OsStrExt;
        return store
            .latest_artifact_at(path.as_os_str().as_bytes())?
            .map(Target::Artifact)
            .ok_or_else(|| {
                CliError::usage(format!(
                    "{}: no job recorded this file",
                    crate::human::safe(&path.display().to_string())
                ))
            });
    }
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_hexdigit()) {
        let mut jobs = store.jobs_by_uid_prefix(name)?;
        let artifacts = if name.len() >= 6 {
            store.artifacts_by_hash_prefix(name)?
        } else {
            vec![]
        };
        match (jobs.len(), artifacts.len()) {
            (1, 0) => return Ok(Target::Job(Box::new(jobs.remove(0)))),
            (0, 1) => return Ok(Target::Artifact(artifacts.into_iter().next().expect("one"))),
            (0, 0) => {}
            _ => {
                let mut c: Vec<String> = jobs.iter().map(|j| format!("job {}", j.uid)).collect();
                c.extend(artifacts.iter().map(|a| format!("artifact {}", a.hash)));
                return Err(ambiguous(name, c));
            }
        }
    }
    Err(CliError::usage(format!(
        "{}: not a step (@N), job uid, recorded file or artifact hash",
        crate::human::safe(name)
    )))
}
