//! `roar show`, `roar log`, `roar status`.

use std::path::Path;

use roar_collector::store::{Artifact, Job, Store};
use serde_json::json;

use crate::error::Result;
use crate::human::{command, duration, relative, safe, short_hash, timestamp};
use crate::target::{resolve, Target};
use crate::view;

pub fn show(store: &Store, cwd: &Path, root: &Path, name: &str, as_json: bool) -> Result<()> {
    match resolve(store, cwd, name)? {
        Target::Job(j) if as_json => view::print_json(&view::job_detail(store, &j)?),
        Target::Job(j) => print_job(store, &j, &root.to_string_lossy())?,
        Target::Artifact(a) if as_json => view::print_json(&view::artifact(store, &a)?),
        Target::Artifact(a) => print_artifact(store, &a, &root.to_string_lossy())?,
    }
    Ok(())
}

fn print_job(store: &Store, j: &Job, root: &str) -> Result<()> {
    println!("@{}  {}  ({})", j.step, command(&j.command), j.kind);
    println!("  uid       {}", j.uid);
    println!("  cwd       {}", safe(&j.cwd));
    println!(
        "  started   {} UTC, took {}, exit status {}",
        timestamp(j.started_at),
        duration(j.ended_at - j.started_at),
        j.exit_status
    );
    if let Some(g) = &j.git {
        println!(
            "  git       {} on {}{}",
            g.commit
                .as_deref()
                .map_or("(no commit)", |c| &c[..c.len().min(12)]),
            g.branch.as_deref().unwrap_or("(detached)"),
            if g.dirty { ", uncommitted changes" } else { "" }
        );
    }
    for (title, files) in [
        ("inputs", store.job_inputs(j.id)?),
        ("outputs", store.job_outputs(j.id)?),
    ] {
        println!("  {title} ({})", files.len());
        for f in &files {
            println!(
                "    {}  {}  {} B",
                short_hash(&f.hash),
                relative(&f.path, root),
                f.size
            );
        }
    }
    let procs = store.job_processes(j.id)?;
    println!("  processes ({})", procs.len());
    for p in &procs {
        println!(
            "    {} ← {}  {}{}",
            p.pid,
            p.ppid,
            command(&p.argv),
            p.exit_status.map_or(String::new(), |s| format!("  → {s}"))
        );
    }
    Ok(())
}

fn print_artifact(store: &Store, a: &Artifact, root: &str) -> Result<()> {
    println!("{}  {} B", a.hash, a.size);
    for (title, jobs) in [
        ("written by", store.artifact_writers(a.id)?),
        ("read by", store.artifact_readers(a.id)?),
    ] {
        if jobs.is_empty() {
            println!("  {title}: no recorded job");
        }
        for (j, path) in &jobs {
            println!(
                "  {title} @{} ({})  {}  as {}",
                j.step,
                &j.uid[..8],
                command(&j.command),
                relative(path, root)
            );
        }
    }
    Ok(())
}

pub fn log(store: &Store, as_json: bool) -> Result<()> {
    let jobs = match store.active_session()? {
        Some(s) => store.session_jobs(s.id)?,
        None => vec![],
    };
    if as_json {
        view::print_json(&json!(jobs
            .iter()
            .map(view::job_summary)
            .collect::<Vec<_>>()));
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no jobs yet; record one with `roar run COMMAND`");
    }
    for j in &jobs {
        println!(
            "@{:<3} {}  {} UTC  {:>8}  exit {:<3} {}",
            j.step,
            &j.uid[..8],
            timestamp(j.started_at),
            duration(j.ended_at - j.started_at),
            j.exit_status,
            command(&j.command)
        );
    }
    Ok(())
}

pub fn status(store: &Store, root: &Path, as_json: bool) -> Result<()> {
    let session = store.active_session()?;
    let jobs = match &session {
        Some(s) => store.session_jobs(s.id)?,
        None => vec![],
    };
    let last = jobs.last();
    if as_json {
        view::print_json(&json!({
            "project": root,
            "session": session.as_ref().map(|s| &s.hash),
            "jobs": jobs.len(),
            "last_job": last.map(view::job_summary),
        }));
        return Ok(());
    }
    println!("project   {}", safe(&root.display().to_string()));
    match &session {
        Some(s) => println!(
            "session   {} (since {} UTC), {} jobs",
            &s.hash[..12],
            timestamp(s.created_at),
            jobs.len()
        ),
        None => println!("session   none yet; record a job with `roar run COMMAND`"),
    }
    if let Some(j) = last {
        println!(
            "last job  @{} {}  exit {}",
            j.step,
            command(&j.command),
            j.exit_status
        );
    }
    Ok(())
}
