//! Provenance graphs — jobs and the artifacts between them — and their
//! pictures: Graphviz DOT, Mermaid, and SVG drawn by roar itself (a
//! layered layout: no Graphviz needed).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use roar_collector::store::{Job, JobFile, Store};
use serde_json::{json, Value};

use crate::error::Result;
use crate::human::{command, safe, short_hash};

/// A job or artifact has at most this many files drawn on each side; the
/// rest become one "N more files" node.
const FILES_SHOWN: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Job {
        uid: String,
        step: i64,
        kind: String,
        command: String,
        exit_status: i32,
    },
    Artifact {
        hash: String,
        path: String,
    },
    /// Files left out of the picture.
    More {
        count: usize,
    },
}

impl Node {
    /// What makes two nodes one: a job's uid, an artifact's content at a
    /// path (a copy is another node), each "more" node on its own.
    fn key(&self, index: usize) -> String {
        match self {
            Node::Job { uid, .. } => format!("job {uid}"),
            Node::Artifact { hash, path } => format!("artifact {hash} {path}"),
            Node::More { .. } => format!("more {index}"),
        }
    }

    /// The node's id in JSON, DOT and Mermaid: unique within one document.
    fn id(index: usize) -> String {
        format!("n{index}")
    }

    fn label(&self) -> String {
        match self {
            Node::Job {
                step,
                kind,
                command,
                ..
            } => {
                let build = if kind == "build" { " [build]" } else { "" };
                format!("@{step}{build} {}", clip(command, 40))
            }
            Node::Artifact { hash, path } => {
                let name = path.rsplit('/').next().unwrap_or(path);
                format!("{} {}", short_hash(hash), clip(name, 30))
            }
            Node::More { count } => format!("{count} more files"),
        }
    }
}

fn clip(s: &str, max: usize) -> String {
    let s = safe(s);
    if s.chars().count() <= max {
        s
    } else {
        let head: String = s.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// (from, to): input artifact → job, job → output artifact.
    pub edges: Vec<(usize, usize)>,
    index: HashMap<String, usize>,
}

impl Graph {
    pub fn add(&mut self, node: Node) -> usize {
        let key = node.key(self.nodes.len());
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.nodes.push(node);
        self.index.insert(key, self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    pub fn link(&mut self, from: usize, to: usize) {
        if !self.edges.contains(&(from, to)) {
            self.edges.push((from, to));
        }
    }

    pub fn job(&mut self, j: &Job) -> usize {
        self.add(Node::Job {
            uid: j.uid.clone(),
            step: j.step,
            kind: j.kind.clone(),
            command: command(&j.command),
            exit_status: j.exit_status,
        })
    }

    pub fn artifact(&mut self, f: &JobFile) -> usize {
        self.add(Node::Artifact {
            hash: f.hash.clone(),
            path: f.path.clone(),
        })
    }

    /// Links `files` to job node `job` (as inputs or outputs), drawing at
    /// most [`FILES_SHOWN`] of them besides those in `keep`.
    pub fn files(
        &mut self,
        job: usize,
        files: &[JobFile],
        inputs: bool,
        keep: &dyn Fn(&JobFile) -> bool,
    ) {
        let mut shown = 0;
        let mut hidden = 0;
        for f in files {
            if keep(f) || shown < FILES_SHOWN {
                shown += usize::from(!keep(f));
                let a = self.artifact(f);
                if inputs {
                    self.link(a, job);
                } else {
                    self.link(job, a);
                }
            } else {
                hidden += 1;
            }
        }
        if hidden > 0 {
            let more = self.add(Node::More { count: hidden });
            if inputs {
                self.link(more, job);
            } else {
                self.link(job, more);
            }
        }
    }

    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n {
                Node::Job {
                    uid,
                    step,
                    kind,
                    command,
                    exit_status,
                } => json!({"id": Node::id(i), "type": "job", "uid": uid, "step": step,
                            "kind": kind, "command": command, "exit_status": exit_status}),
                Node::Artifact { hash, path } => {
                    json!({"id": Node::id(i), "type": "artifact", "hash": hash, "path": path})
                }
                Node::More { count } => json!({"id": Node::id(i), "type": "more", "count": count}),
            })
            .collect();
        let edges: Vec<Value> = self
            .edges
            .iter()
            .map(|&(a, b)| json!({"from": Node::id(a), "to": Node::id(b)}))
            .collect();
        json!({"nodes": nodes, "edges": edges})
    }

    pub fn to_dot(&self) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::from("digraph roar {\n  rankdir=LR;\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let shape = match n {
                Node::Job { .. } => "box",
                Node::Artifact { .. } => "ellipse",
                Node::More { .. } => "plaintext",
            };
            let _ = writeln!(
                out,
                "  {} [shape={shape}, label=\"{}\"];",
                Node::id(i),
                esc(&n.label())
            );
        }
        for &(a, b) in &self.edges {
            let _ = writeln!(out, "  {} -> {};", Node::id(a), Node::id(b));
        }
        out.push_str("}\n");
        out
    }

    pub fn to_mermaid(&self) -> String {
        let esc = |s: &str| s.replace('"', "#quot;");
        let mut out = String::from("flowchart LR\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let label = esc(&n.label());
            let _ = match n {
                Node::Job { .. } => writeln!(out, "  n{i}[\"{label}\"]"),
                Node::Artifact { .. } => writeln!(out, "  n{i}([\"{label}\"])"),
                Node::More { .. } => writeln!(out, "  n{i}>\"{label}\"]"),
            };
        }
        for &(a, b) in &self.edges {
            let _ = writeln!(out, "  n{a} --> n{b}");
        }
        out
    }

    /// Layers by longest path from the sources, left to right; within a
    /// layer, nodes ordered by the mean position of their predecessors.
    fn layout(&self) -> Vec<(usize, usize)> {
        let n = self.nodes.len();
        let mut layer = vec![0usize; n];
        // Longest path over a DAG: relax edges n times at most (small graphs).
        for _ in 0..n {
            let mut changed = false;
            for &(a, b) in &self.edges {
                if layer[b] < layer[a] + 1 && layer[a] + 1 < n {
                    layer[b] = layer[a] + 1;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut layers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, l) in layer.iter().enumerate() {
            layers.entry(*l).or_default().push(i);
        }
        let mut pos = vec![0f64; n];
        let mut slot = vec![0usize; n];
        for members in layers.values_mut() {
            let key = |i: usize| {
                let preds: Vec<f64> = self
                    .edges
                    .iter()
                    .filter(|(_, b)| *b == i)
                    .map(|(a, _)| pos[*a])
                    .collect();
                if preds.is_empty() {
                    i as f64
                } else {
                    preds.iter().sum::<f64>() / preds.len() as f64
                }
            };
            let mut keyed: Vec<(f64, usize)> = members.iter().map(|&i| (key(i), i)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (s, (_, i)) in keyed.into_iter().enumerate() {
                pos[i] = s as f64;
                slot[i] = s;
            }
        }
        (0..n).map(|i| (layer[i], slot[i])).collect()
    }

    pub fn to_svg(&self) -> String {
        const COL: f64 = 260.0;
        const ROW: f64 = 70.0;
        const W: f64 = 220.0;
        const H: f64 = 40.0;
        let xml = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let places = self.layout();
        let center = |i: usize| {
            let (l, s) = places[i];
            (
                20.0 + l as f64 * COL + W / 2.0,
                20.0 + s as f64 * ROW + H / 2.0,
            )
        };
        let width = places
            .iter()
            .map(|p| p.0)
            .max()
            .map_or(0.0, |l| l as f64 + 1.0)
            * COL
            + 40.0;
        let height = places
            .iter()
            .map(|p| p.1)
            .max()
            .map_or(0.0, |s| s as f64 + 1.0)
            * ROW
            + 40.0;
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"monospace\" font-size=\"12\">\n\
             <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>\n"
        );
        for &(a, b) in &self.edges {
            let (x1, y1) = center(a);
            let (x2, y2) = center(b);
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{y1}\" x2=\"{}\" y2=\"{y2}\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>",
                x1 + W / 2.0,
                x2 - W / 2.0
            );
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let (x, y) = center(i);
            let shape = match n {
                Node::Job { exit_status, .. } => {
                    let fill = if *exit_status == 0 { "#e8f0fe" } else { "#fde8e8" };
                    format!(
                        "<rect x=\"{}\" y=\"{}\" width=\"{W}\" height=\"{H}\" rx=\"4\" fill=\"{fill}\" stroke=\"#333\"/>",
                        x - W / 2.0,
                        y - H / 2.0
                    )
                }
                Node::Artifact { .. } => format!(
                    "<ellipse cx=\"{x}\" cy=\"{y}\" rx=\"{}\" ry=\"{}\" fill=\"#f4f4f4\" stroke=\"#333\"/>",
                    W / 2.0,
                    H / 2.0
                ),
                Node::More { .. } => String::new(),
            };
            let _ = writeln!(
                out,
                "<g class=\"{}\">{shape}<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
                match n {
                    Node::Job { .. } => "job",
                    Node::Artifact { .. } => "artifact",
                    Node::More { .. } => "more",
                },
                y + 4.0,
                xml(&n.label())
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

/// The session's jobs and the files they read and wrote.
pub fn session_graph(store: &Store, session_id: i64) -> Result<Graph> {
    let mut g = Graph::default();
    let jobs = store.session_jobs(session_id)?;
    // Files another job of the session also touched are always drawn.
    let mut uses: HashMap<String, usize> = HashMap::new();
    let mut files = Vec::new();
    for j in &jobs {
        let (i, o) = (store.job_inputs(j.id)?, store.job_outputs(j.id)?);
        for f in i.iter().chain(&o) {
            *uses.entry(f.hash.clone()).or_default() += 1;
        }
        files.push((i, o));
    }
    let shared = |f: &JobFile| uses.get(&f.hash).copied().unwrap_or(0) > 1;
    for (j, (inputs, outputs)) in jobs.iter().zip(&files) {
        let node = g.job(j);
        g.files(node, inputs, true, &shared);
        g.files(node, outputs, false, &shared);
    }
    Ok(g)
}
