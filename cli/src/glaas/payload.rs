//! What `roar register TARGET` sends: the target's jobs, the artifacts they
//! read and wrote, their input/output edges, and the labels on all of them
//! (and on their sessions), as the request bodies of docs/glaas-api.md.
//! Each piece has an item key (`artifact:HASH`, `job:UID`, ...) recorded
//! once the server accepts it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use roar_collector::labels::LabelKind;
use roar_collector::store::{Job, JobFile, Store};
use serde_json::{json, Value};

use crate::error::{CliError, Result};
use crate::target::{self, Target};

/// Artifacts per `artifacts/batch` request, jobs per `jobs/batch`, ...
pub const BATCH: usize = 500;

/// A registration target, with the key its state is kept under.
pub struct Selection {
    pub key: String,
    pub jobs: Vec<Job>,
    pub sessions: BTreeMap<i64, String>,
}

/// `@N`, a job uid, an artifact path or hash (with its whole upstream
/// lineage), or `dag current` / `dag SESSION-HASH`.
pub fn select(store: &Store, cwd: &Path, words: &[String]) -> Result<Selection> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (jobs, key) = match words.as_slice() {
        ["dag", name] => {
            let t = crate::label_cmd::resolve(store, cwd, "dag", name)?;
            let session = store.session(t.id)?;
            (store.session_jobs(t.id)?, format!("dag:{}", session.hash))
        }
        ["job" | "artifact", name] | [name] => match target::resolve(store, cwd, name)? {
            Target::Job(j) => {
                let key = format!("job:{}", j.uid);
                (upstream(store, vec![*j])?, key)
            }
            Target::Artifact(a) => {
                let path = store.artifact_path(a.id)?;
                let producer = store.producer(a.id, None, path.as_deref())?;
                let jobs = upstream(store, producer.into_iter().collect())?;
                if jobs.is_empty() {
                    return Err(CliError::usage(format!(
                        "{}: no recorded job produced this artifact; register the job that read it, or its dag",
                        crate::human::safe(name)
                    )));
                }
                (jobs, format!("artifact:{}", a.hash))
            }
        },
        _ => {
            return Err(CliError::usage(
                "register what? `@N`, a job uid, an artifact path or hash, or `dag current`",
            ))
        }
    };
    let mut sessions = BTreeMap::new();
    for j in &jobs {
        sessions.insert(j.session_id, store.session(j.session_id)?.hash);
    }
    Ok(Selection {
        key,
        jobs,
        sessions,
    })
}

/// `start` and every job upstream of them (the producers of their inputs,
/// recursively), oldest first.
fn upstream(store: &Store, start: Vec<Job>) -> Result<Vec<Job>> {
    let mut seen: BTreeMap<i64, Job> = BTreeMap::new();
    let mut queue: VecDeque<Job> = start.into();
    while let Some(job) = queue.pop_front() {
        if seen.contains_key(&job.id) {
            continue;
        }
        for f in store.job_inputs(job.id)? {
            if let Some(p) = store.producer(f.artifact_id, Some(job.id), Some(&f.path))? {
                queue.push_back(p);
            }
        }
        seen.insert(job.id, job);
    }
    Ok(seen.into_values().collect())
}

/// One request of a registration: where it goes, its body, and the items
/// it registers.
pub struct Request {
    /// Relative to `/api/v1/registration-sessions/{id}`.
    pub path: String,
    pub body: Value,
    pub items: Vec<String>,
}

fn media_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "json" => "application/json",
        "jsonl" => "application/jsonl",
        "txt" | "log" | "md" => "text/plain",
        "parquet" => "application/vnd.apache.parquet",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "npy" | "npz" | "pt" | "pkl" | "pickle" | "bin" | "safetensors" | "h5" => {
            "application/octet-stream"
        }
        _ => return None,
    })
}

fn file_json(f: &JobFile) -> Value {
    json!({"hash": f.hash, "path": f.path})
}

/// Every request of the selection, in order (session creation and
/// finalisation aside), each keeping only what `done` does not hold.
pub fn requests(
    store: &Store,
    sel: &Selection,
    scope: &str,
    done: &dyn Fn(&str) -> bool,
) -> Result<(Vec<Request>, Value)> {
    let mut artifacts: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    let mut edges = Vec::new();
    let mut labels = Vec::new();
    for j in &sel.jobs {
        let (inputs, outputs) = (store.job_inputs(j.id)?, store.job_outputs(j.id)?);
        for f in inputs.iter().chain(&outputs) {
            let entry = artifacts
                .entry(f.hash.clone())
                .or_insert((f.size, BTreeSet::new()));
            entry.1.insert(f.path.clone());
        }
        edges.push((j.uid.clone(), "inputs", inputs));
        edges.push((j.uid.clone(), "outputs", outputs));
        if let Some(v) = store.labels(LabelKind::Job, j.id)? {
            labels.push(("job", j.uid.clone(), v));
        }
    }
    for hash in artifacts.keys() {
        let found = store.artifacts_by_hash_prefix(hash)?;
        if let Some(a) = found.into_iter().find(|a| &a.hash == hash) {
            if let Some(v) = store.labels(LabelKind::Artifact, a.id)? {
                labels.push(("artifact", a.hash.clone(), v));
            }
        }
    }
    for (id, hash) in &sel.sessions {
        if let Some(v) = store.labels(LabelKind::Dag, *id)? {
            labels.push(("dag", hash.clone(), v));
        }
    }

    let mut out = Vec::new();
    let art_items: Vec<(String, Value)> = artifacts
        .iter()
        .map(|(hash, (size, paths))| {
            let first = paths.iter().next().map(String::as_str).unwrap_or("");
            (
                format!("artifact:{hash}"),
                json!({"hash": hash, "size": size, "paths": paths, "media_type": media_type(first)}),
            )
        })
        .filter(|(k, _)| !done(k))
        .collect();
    for chunk in art_items.chunks(BATCH) {
        out.push(Request {
            path: "/artifacts/batch".into(),
            body: json!({"artifacts": chunk.iter().map(|(_, v)| v).collect::<Vec<_>>()}),
            items: chunk.iter().map(|(k, _)| k.clone()).collect(),
        });
    }
    let job_items: Vec<(String, Value)> = sel
        .jobs
        .iter()
        .map(|j| (format!("job:{}", j.uid), job_json(j, &sel.sessions)))
        .filter(|(k, _)| !done(k))
        .collect();
    for chunk in job_items.chunks(BATCH) {
        out.push(Request {
            path: "/jobs/batch".into(),
            body: json!({"jobs": chunk.iter().map(|(_, v)| v).collect::<Vec<_>>()}),
            items: chunk.iter().map(|(k, _)| k.clone()).collect(),
        });
    }
    let mut edge_count = 0;
    for (uid, side, files) in &edges {
        edge_count += files.len();
        let item = format!("{side}:{uid}");
        if !done(&item) {
            out.push(Request {
                path: format!("/jobs/{uid}/{side}"),
                body: json!({"artifacts": files.iter().map(file_json).collect::<Vec<_>>()}),
                items: vec![item],
            });
        }
    }
    let label_items: Vec<(String, Value)> = labels
        .iter()
        .map(|(kind, id, v)| {
            (
                format!("labels:{kind}:{id}:{}", v.version),
                json!({"kind": kind, "id": id, "version": v.version,
                       "labels": Value::Object(v.document.root.clone()),
                       "origins": v.document.flat().into_iter()
                           .map(|(k, _)| { let o = v.document.origin(&k).name(); (k, json!(o)) })
                           .collect::<serde_json::Map<_, _>>(),
                       "scope": scope}),
            )
        })
        .filter(|(k, _)| !done(k))
        .collect();
    for chunk in label_items.chunks(BATCH) {
        out.push(Request {
            path: "/labels/batch".into(),
            body: json!({"labels": chunk.iter().map(|(_, v)| v).collect::<Vec<_>>()}),
            items: chunk.iter().map(|(k, _)| k.clone()).collect(),
        });
    }
    let last = sel.jobs.last();
    let git = last.and_then(|j| j.git.as_ref());
    let finalize = json!({
        "git": {
            "repo": git.and_then(|g| g.repo_root.clone()),
            "commit": git.and_then(|g| g.commit.clone()),
            "branch": git.and_then(|g| g.branch.clone()),
        },
        "expected": {"artifacts": artifacts.len(), "jobs": sel.jobs.len(),
                     "edges": edge_count, "labels": labels.len()},
        "scope_request": scope,
    });
    Ok((out, finalize))
}

fn job_json(j: &Job, sessions: &BTreeMap<i64, String>) -> Value {
    json!({
        "uid": j.uid,
        "step": j.step,
        "kind": j.kind,
        "session": sessions.get(&j.session_id),
        "command": j.command,
        "cwd": j.cwd,
        "started_at": j.started_at,
        "ended_at": j.ended_at,
        "exit_status": j.exit_status,
        "git": j.git.as_ref().map(|g| json!({
            "commit": g.commit, "branch": g.branch, "repo": g.repo_root, "dirty": g.dirty,
        })),
        "trackers": j.trackers.iter().map(|t| json!({
            "tracker": t.tracker, "run_id": t.run_id, "project": t.project, "url": t.url,
        })).collect::<Vec<_>>(),
    })
}
