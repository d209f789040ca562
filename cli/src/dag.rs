//! `roar dag`: the session's jobs linked through the artifacts they share.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use roar_collector::store::{Job, JobFile, Store};
use serde_json::json;

use crate::error::Result;
use crate::graph::session_graph;
use crate::human::{command, relative};
use crate::lineage::{print_picture, Format};
use crate::out::outln;
use crate::view;

struct Node {
    job: Job,
    inputs: Vec<JobFile>,
    outputs: Vec<JobFile>,
}

/// An artifact written by step `from` and read by the later step `to`.
struct Edge {
    from: i64,
    to: i64,
    hash: String,
    path: String,
}

/// Each input is linked to the latest earlier job that wrote that content.
fn edges(nodes: &[Node]) -> Vec<Edge> {
    let mut producer: HashMap<&str, i64> = HashMap::new();
    let mut edges = Vec::new();
    for n in nodes {
        let mut seen = BTreeSet::new();
        for f in &n.inputs {
            if let Some(&from) = producer.get(f.hash.as_str()) {
                if from != n.job.step && seen.insert((from, &f.hash)) {
                    edges.push(Edge {
                        from,
                        to: n.job.step,
                        hash: f.hash.clone(),
                        path: f.path.clone(),
                    });
                }
            }
        }
        for f in &n.outputs {
            producer.insert(&f.hash, n.job.step);
        }
    }
    edges
}

pub fn dag(store: &Store, root: &Path, format: Format) -> Result<()> {
    let session = store.active_session()?;
    if !matches!(format, Format::Tree | Format::Json) {
        let g = match &session {
            Some(s) => session_graph(store, s.id)?,
            None => Default::default(),
        };
        print_picture(&g, &format);
        return Ok(());
    }
    let as_json = matches!(format, Format::Json);
    let mut nodes = Vec::new();
    if let Some(s) = &session {
        for job in store.session_jobs(s.id)? {
            nodes.push(Node {
                inputs: store.job_inputs(job.id)?,
                outputs: store.job_outputs(job.id)?,
                job,
            });
        }
    }
    let edges = edges(&nodes);
    if as_json {
        let jobs: Vec<_> = nodes
            .iter()
            .map(|n| {
                json!({
                    "step": n.job.step,
                    "uid": n.job.uid,
                    "kind": n.job.kind,
                    "command": n.job.command,
                    "exit_status": n.job.exit_status,
                    "inputs": n.inputs.iter().map(view::file).collect::<Vec<_>>(),
                    "outputs": n.outputs.iter().map(view::file).collect::<Vec<_>>(),
                })
            })
            .collect();
        let edges: Vec<_> = edges
            .iter()
            .map(|e| json!({"from": e.from, "to": e.to, "artifact": e.hash, "path": e.path}))
            .collect();
        view::print_json(&json!({
            "session": session.map(|s| s.hash),
            "jobs": jobs,
            "edges": edges,
        }));
        return Ok(());
    }
    if nodes.is_empty() {
        outln!("no jobs yet; record one with `roar run COMMAND`");
        return Ok(());
    }
    // Build steps (roar build) are listed apart from the pipeline.
    let (builds, steps): (Vec<Node>, Vec<Node>) =
        nodes.into_iter().partition(|n| n.job.kind == "build");
    if !builds.is_empty() {
        outln!("build steps:");
        for n in &builds {
            outln!("  @{} {}", n.job.step, command(&n.job.command));
        }
        if !steps.is_empty() {
            outln!("pipeline:");
        }
    }
    let edges: Vec<Edge> = edges
        .into_iter()
        .filter(|e| {
            steps.iter().any(|n| n.job.step == e.from) && steps.iter().any(|n| n.job.step == e.to)
        })
        .collect();
    print_tree(&steps, &edges, &root.to_string_lossy());
    Ok(())
}

fn print_tree(nodes: &[Node], edges: &[Edge], root: &str) {
    let by_step: BTreeMap<i64, &Node> = nodes.iter().map(|n| (n.job.step, n)).collect();
    let mut children: BTreeMap<i64, Vec<&Edge>> = BTreeMap::new();
    let mut has_parent = BTreeSet::new();
    for e in edges {
        children.entry(e.from).or_default().push(e);
        has_parent.insert(e.to);
    }
    let label = |step: i64| {
        let n = by_step[&step];
        let failed = if n.job.exit_status != 0 {
            format!("  [exit {}]", n.job.exit_status)
        } else {
            String::new()
        };
        format!("@{step} {}{failed}", command(&n.job.command))
    };
    let mut printed = BTreeSet::new();
    fn walk(
        step: i64,
        prefix: &str,
        children: &BTreeMap<i64, Vec<&Edge>>,
        label: &dyn Fn(i64) -> String,
        printed: &mut BTreeSet<i64>,
        root: &str,
    ) {
        let Some(kids) = children.get(&step) else {
            return;
        };
        for (i, e) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            let (branch, indent) = if last {
                ("└─", "   ")
            } else {
                ("├─", "│  ")
            };
            let again = !printed.insert(e.to);
            outln!(
                "{prefix}{branch} {} → {}{}",
                relative(&e.path, root),
                label(e.to),
                if again { "  (shown above)" } else { "" }
            );
            if !again {
                walk(
                    e.to,
                    &format!("{prefix}{indent}"),
                    children,
                    label,
                    printed,
                    root,
                );
            }
        }
    }
    for n in nodes {
        let step = n.job.step;
        if has_parent.contains(&step) {
            continue;
        }
        printed.insert(step);
        outln!("{}", label(step));
        walk(step, "", &children, &label, &mut printed, root);
    }
}
