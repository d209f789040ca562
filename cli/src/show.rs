//! `roar show`, `roar log`, `roar status`.

use std::path::Path;

use roar_collector::store::{Artifact, Job, Store};
use serde_json::json;

use crate::error::Result;
use crate::human::{command, duration, relative, safe, short_hash, thousands, timestamp};
use crate::out::outln;
use crate::target::{resolve, Target};
use crate::view;

/// Files listed per section before the rest is counted (`-v`: all).
const LIST_MAX: usize = 20;

pub fn show(
    store: &Store,
    cwd: &Path,
    root: &Path,
    name: &str,
    as_json: bool,
    verbose: bool,
) -> Result<()> {
    match resolve(store, cwd, name)? {
        Target::Job(j) if as_json => view::print_json(&view::job_detail(store, &j)?),
        Target::Job(j) => print_job(store, &j, &root.to_string_lossy(), verbose)?,
        Target::Artifact(a) if as_json => view::print_json(&view::artifact(store, &a)?),
        Target::Artifact(a) => print_artifact(store, &a, &root.to_string_lossy())?,
    }
    Ok(())
}

fn print_job(store: &Store, j: &Job, root: &str, verbose: bool) -> Result<()> {
    outln!("@{}  {}  ({})", j.step, command(&j.command), j.kind);
    outln!("  uid       {}", j.uid);
    outln!("  cwd       {}", safe(&j.cwd));
    outln!(
        "  started   {} UTC, took {}, exit status {}",
        timestamp(j.started_at),
        duration(j.ended_at - j.started_at),
        j.exit_status
    );
    if let Some(g) = &j.git {
        outln!(
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
        outln!("  {title} ({})", files.len());
        let shown = if verbose { files.len() } else { LIST_MAX };
        for f in files.iter().take(shown) {
            outln!(
                "    {}  {}  {} B",
                short_hash(&f.hash),
                relative(&f.path, root),
                f.size
            );
        }
        if files.len() > shown {
            outln!("    … {} more, -v for all", thousands(files.len() - shown));
        }
    }
    for i in &j.runtime.interpreters {
        outln!(
            "  python    {} {}",
            safe(&i.path),
            i.version.as_deref().unwrap_or("(version unknown)")
        );
    }
    if !j.runtime.distributions.is_empty() {
        let dists: Vec<String> = j
            .runtime
            .distributions
            .iter()
            .map(|d| format!("{}=={}", d.name, d.version))
            .collect();
        outln!("  packages  {}", safe(&dists.join(", ")));
    }
    for t in &j.trackers {
        let mut about: Vec<&str> = [t.project.as_deref(), t.name.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        about.extend(t.url.as_deref());
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        };
        outln!(
            "  tracker   {} run {}{}",
            t.tracker,
            safe(&t.run_id),
            safe(&about)
        );
    }
    for u in &j.untraced {
        outln!("  untraced  {} ({})", safe(&u.exe), u.reason.explain());
    }
    let procs = store.job_processes(j.id)?;
    outln!("  processes ({})", procs.len());
    for p in &procs {
        outln!(
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
    outln!("{}  {} B", a.hash, a.size);
    for (title, jobs) in [
        ("written by", store.artifact_writers(a.id)?),
        ("read by", store.artifact_readers(a.id)?),
    ] {
        if jobs.is_empty() {
            outln!("  {title}: no recorded job");
        }
        for (j, path) in &jobs {
            outln!(
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
        outln!("no jobs yet; record one with `roar run COMMAND`");
    }
    for j in &jobs {
        outln!(
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
    outln!("project   {}", safe(&root.display().to_string()));
    match &session {
        Some(s) => outln!(
            "session   {} (since {} UTC), {} jobs",
            &s.hash[..12],
            timestamp(s.created_at),
            jobs.len()
        ),
        None => outln!("session   none yet; record a job with `roar run COMMAND`"),
    }
    if let Some(j) = last {
        outln!(
            "last job  @{} {}  exit {}",
            j.step,
            command(&j.command),
            j.exit_status
        );
    }
    Ok(())
}
