//! The few lines `roar run` prints after the command.

use std::path::Path;

use roar_collector::store::{JobFile, Store};

use crate::error::Result;
use crate::human::{duration, plural, relative, safe, short_hash};

fn list(title: &str, files: &[JobFile], root: &str) {
    for f in files {
        eprintln!(
            "  {title} {}  {}  ({} B)",
            short_hash(&f.hash),
            relative(&f.path, root),
            f.size
        );
    }
}

pub fn print(store: &Store, job_id: i64, root: &Path, verbose: bool) -> Result<()> {
    let job = store.job(job_id)?;
    let inputs = store.job_inputs(job_id)?;
    let outputs = store.job_outputs(job_id)?;
    let s = &job.stats;
    let mut line = format!(
        "{} @{} recorded ({}): {}, {}, {} in {}",
        crate::colour::ok_prefix(),
        job.step,
        &job.uid[..8],
        plural(inputs.len(), "input", "inputs"),
        plural(outputs.len(), "output", "outputs"),
        plural(s.processes as usize, "process", "processes"),
        duration(job.ended_at - job.started_at),
    );
    if job.exit_status != 0 {
        line.push_str(&format!(", exit status {}", job.exit_status));
    }
    eprintln!("{line}");
    if s.incomplete {
        eprintln!(
            "roar: warning: incomplete job: the collector stopped during the run; \
             what it had received is recorded, later events are missing"
        );
    }
    if s.processes == 0 && job.untraced.is_empty() {
        // Recorded, but empty: say so rather than let it pass for a job
        // that read and wrote nothing.
        let why = match crate::tracer_cmd::diagnose() {
            Err(reason) => reason,
            Ok(_) => "the preload library did not run in the command (`roar tracer check`)".into(),
        };
        eprintln!(
            "{} warning: nothing was traced: {why}",
            crate::colour::warn_prefix()
        );
    }
    for t in &job.trackers {
        let at = t.url.as_deref().map(|u| format!(" ({})", safe(u)));
        eprintln!(
            "roar: {} run {}{}",
            t.tracker,
            safe(&t.run_id),
            at.unwrap_or_default()
        );
    }
    for u in &job.untraced {
        eprintln!("roar: untraced: {} ({})", safe(&u.exe), u.reason.explain());
    }
    for w in &s.warnings {
        eprintln!("{} warning: {w}", crate::colour::warn_prefix());
    }
    if verbose {
        let root = root.to_string_lossy();
        list("in ", &inputs, &root);
        list("out", &outputs, &root);
        let filtered: Vec<String> = s.filtered.iter().map(|(k, v)| format!("{k} {v}")).collect();
        eprintln!(
            "  filtered: {}; transient files: {}; hashed {} files ({} B), {} cache hits",
            if filtered.is_empty() {
                "none".to_string()
            } else {
                filtered.join(", ")
            },
            s.transient,
            s.hashed_files,
            s.hashed_bytes,
            s.cache_hits
        );
    }
    Ok(())
}
