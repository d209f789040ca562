//! `roar lineage` and `roar inputs`: from an artifact or step back through
//! the jobs that produced it to its root inputs, across sessions. Each input
//! of a job links to the job that last wrote that content before it ran.

use std::collections::HashSet;
use std::path::Path;

use roar_collector::store::{Job, JobFile, Store};
use serde_json::json;

use crate::error::{CliError, Result};
use crate::graph::Graph;
use crate::human::{command, relative, short_hash};
use crate::out::outln;
use crate::target::{self, Target};
use crate::view::{self, print_json};

/// Where a walk starts: an artifact (as a file of some job), or a job.
enum Start {
    Artifact(JobFile),
    Job(Box<Job>),
}

fn start(store: &Store, cwd: &Path, name: &str) -> Result<Start> {
    Ok(match target::resolve(store, cwd, name)? {
        Target::Job(j) => Start::Job(j),
        Target::Artifact(a) => Start::Artifact(JobFile {
            artifact_id: a.id,
            path: store.artifact_path(a.id)?.unwrap_or_default(),
            hash: a.hash,
            size: a.size,
        }),
    })
}

/// The walk's result: the graph, and lines of the terminal tree.
struct Walk<'a> {
    store: &'a Store,
    root: String,
    depth: Option<usize>,
    graph: Graph,
    lines: Vec<String>,
    /// Root inputs: (file, produced by some job at any time).
    roots: Vec<(JobFile, bool)>,
    seen_jobs: HashSet<i64>,
    seen_roots: HashSet<String>,
}

impl Walk<'_> {
    fn job_label(&self, j: &Job) -> String {
        let failed = if j.exit_status != 0 {
            format!("  [exit {}]", j.exit_status)
        } else {
            String::new()
        };
        format!(
            "@{} {}  ({}){failed}",
            j.step,
            command(&j.command),
            &j.uid[..8]
        )
    }

    /// `f`, read by the job `reader` (None: the starting artifact).
    /// `head` starts its own line, `prefix` the lines below it.
    fn artifact(
        &mut self,
        f: &JobFile,
        reader: Option<i64>,
        (head, prefix): (&str, &str),
        level: usize,
    ) -> Result<usize> {
        let node = self.graph.artifact(f);
        let producer = self.store.producer(f.artifact_id, reader, Some(&f.path))?;
        let line = format!(
            "{head}{}  {}",
            relative(&f.path, &self.root),
            short_hash(&f.hash)
        );
        match producer {
            None => {
                let sourced = self.store.producer(f.artifact_id, None, None)?.is_some();
                self.lines.push(format!("{line}  (root input)"));
                if self.seen_roots.insert(f.hash.clone()) {
                    self.roots.push((f.clone(), sourced));
                }
            }
            Some(job) => {
                self.lines.push(line);
                if self.depth.is_some_and(|d| level >= d) {
                    self.lines.push(format!("{prefix}└─ … (--depth {level})"));
                    return Ok(node);
                }
                let j = self.job(
                    &job,
                    &format!("{prefix}└─ "),
                    &format!("{prefix}   "),
                    level + 1,
                )?;
                self.graph.link(j, node);
            }
        }
        Ok(node)
    }

    fn job(&mut self, job: &Job, head: &str, prefix: &str, level: usize) -> Result<usize> {
        let node = self.graph.job(job);
        let again = !self.seen_jobs.insert(job.id);
        self.lines.push(format!(
            "{head}{}{}",
            self.job_label(job),
            if again { "  (shown above)" } else { "" }
        ));
        if again {
            return Ok(node);
        }
        let inputs = self.store.job_inputs(job.id)?;
        for (i, f) in inputs.iter().enumerate() {
            let last = i + 1 == inputs.len();
            let (branch, indent) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            let (head, below) = (format!("{prefix}{branch}"), format!("{prefix}{indent}"));
            let a = self.artifact(f, Some(job.id), (&head, &below), level)?;
            self.graph.link(a, node);
        }
        Ok(node)
    }
}

fn walk<'a>(
    store: &'a Store,
    cwd: &Path,
    root: &Path,
    name: &str,
    depth: Option<usize>,
) -> Result<Walk<'a>> {
    let mut w = Walk {
        store,
        root: root.to_string_lossy().into_owned(),
        depth,
        graph: Graph::default(),
        lines: Vec::new(),
        roots: Vec::new(),
        seen_jobs: HashSet::new(),
        seen_roots: HashSet::new(),
    };
    match start(store, cwd, name)? {
        Start::Artifact(f) => {
            w.artifact(&f, None, ("", ""), 0)?;
        }
        Start::Job(j) => {
            w.job(&j, "", "", 0)?;
        }
    }
    Ok(w)
}

pub enum Format {
    Tree,
    Json,
    Dot,
    Mermaid,
    Svg,
}

impl Format {
    pub fn named(name: &str) -> Result<Format> {
        Ok(match name {
            "tree" => Format::Tree,
            "json" => Format::Json,
            "dot" => Format::Dot,
            "mermaid" => Format::Mermaid,
            "svg" => Format::Svg,
            other => {
                return Err(CliError::usage(format!(
                    "--format is tree, json, dot, mermaid or svg, not {}",
                    crate::human::safe(other)
                )))
            }
        })
    }
}

/// Prints a graph in a picture format; false for `tree` (the caller's own).
pub fn print_picture(g: &Graph, format: &Format) -> bool {
    match format {
        Format::Tree => return false,
        Format::Json => print_json(&g.to_json()),
        Format::Dot => crate::out::print(&g.to_dot()),
        Format::Mermaid => crate::out::print(&g.to_mermaid()),
        Format::Svg => crate::out::print(&g.to_svg()),
    }
    true
}

pub fn lineage(
    store: &Store,
    cwd: &Path,
    root: &Path,
    name: &str,
    depth: Option<usize>,
    format: Format,
) -> Result<()> {
    let w = walk(store, cwd, root, name, depth)?;
    if !print_picture(&w.graph, &format) {
        for line in &w.lines {
            outln!("{line}");
        }
    }
    Ok(())
}

pub fn inputs(
    store: &Store,
    cwd: &Path,
    root: &Path,
    name: &str,
    unsourced: bool,
    as_json: bool,
) -> Result<()> {
    let mut w = walk(store, cwd, root, name, None)?;
    w.roots.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let roots: Vec<&JobFile> = w
        .roots
        .iter()
        .filter(|(_, sourced)| !unsourced || !sourced)
        .map(|(f, _)| f)
        .collect();
    if as_json {
        let list: Vec<_> = w
            .roots
            .iter()
            .filter(|(_, sourced)| !unsourced || !sourced)
            .map(|(f, sourced)| {
                let mut v = view::file(f);
                v["produced_by_a_job"] = json!(sourced);
                v
            })
            .collect();
        print_json(&json!(list));
        return Ok(());
    }
    for f in roots {
        outln!("{}  {}", short_hash(&f.hash), relative(&f.path, &w.root));
    }
    Ok(())
}
