//! The JSON shapes of records (documented contract: see docs/json.md).

use roar_collector::store::{Artifact, Job, JobFile, Process, Store};
use serde_json::{json, Value};

use crate::error::Result;
use crate::out::outln;

pub fn file(f: &JobFile) -> Value {
    json!({ "path": f.path, "hash": f.hash, "size": f.size })
}

pub fn process(p: &Process) -> Value {
    json!({
        "pid": p.pid,
        "ppid": p.ppid,
        "exe": p.exe,
        "argv": p.argv,
        "exit_status": p.exit_status,
        "detached": p.detached,
        "reads": p.reads,
        "writes": p.writes,
    })
}

/// The fields every listing of a job carries.
pub fn job_summary(j: &Job) -> Value {
    json!({
        "step": j.step,
        "uid": j.uid,
        "kind": j.kind,
        "command": j.command,
        "cwd": j.cwd,
        "exit_status": j.exit_status,
        "started_at": j.started_at,
        "ended_at": j.ended_at,
        "duration_s": j.ended_at - j.started_at,
        "incomplete": j.stats.incomplete,
    })
}

/// Everything recorded about one job.
pub fn job_detail(store: &Store, j: &Job) -> Result<Value> {
    let mut v = job_summary(j);
    let o = v.as_object_mut().expect("job_summary is an object");
    o.insert(
        "git".into(),
        j.git.as_ref().map_or(Value::Null, |g| {
            json!({"commit": g.commit, "branch": g.branch, "dirty": g.dirty, "repo": g.repo_root})
        }),
    );
    o.insert("tracer".into(), json!(j.tracer));
    o.insert("interpreters".into(), json!(j.runtime.interpreters));
    o.insert("distributions".into(), json!(j.runtime.distributions));
    o.insert("trackers".into(), json!(j.trackers));
    let processes: Vec<Value> = store.job_processes(j.id)?.iter().map(process).collect();
    o.insert("processes".into(), json!(processes));
    let inputs: Vec<Value> = store.job_inputs(j.id)?.iter().map(file).collect();
    let outputs: Vec<Value> = store.job_outputs(j.id)?.iter().map(file).collect();
    o.insert("inputs".into(), json!(inputs));
    o.insert("outputs".into(), json!(outputs));
    o.insert(
        "untraced".into(),
        serde_json::to_value(&j.untraced).expect("untraced serialise"),
    );
    o.insert(
        "stats".into(),
        serde_json::to_value(&j.stats).expect("stats serialise"),
    );
    Ok(v)
}

pub fn artifact(store: &Store, a: &Artifact) -> Result<Value> {
    let edge = |(j, path): &(Job, String)| json!({"step": j.step, "uid": j.uid, "path": path, "session_id": j.session_id});
    let writers: Vec<Value> = store.artifact_writers(a.id)?.iter().map(edge).collect();
    let readers: Vec<Value> = store.artifact_readers(a.id)?.iter().map(edge).collect();
    Ok(json!({
        "hash": a.hash,
        "size": a.size,
        "first_seen": a.first_seen,
        "written_by": writers,
        "read_by": readers,
    }))
}

pub fn print_json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).expect("values serialise")
    );
}
