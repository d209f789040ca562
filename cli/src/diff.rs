//! `roar diff A B`: how the provenance of two artifacts or two steps
//! differs — their inputs, command, git commit, interpreter and package
//! versions, and tracker runs. An artifact stands for the job that produced
//! it.

use std::collections::BTreeMap;
use std::path::Path;

use roar_collector::store::{Job, Store};
use serde_json::{json, Value};

use crate::error::{CliError, Result};
use crate::human::{command, relative, safe, short_hash};
use crate::out::outln;
use crate::target::{self, Target};
use crate::view::print_json;

struct Side {
    job: Job,
    /// The artifact compared, when the side is one.
    artifact: Option<(String, u64)>,
}

fn side(store: &Store, cwd: &Path, name: &str) -> Result<Side> {
    match target::resolve(store, cwd, name)? {
        Target::Job(j) => Ok(Side {
            job: *j,
            artifact: None,
        }),
        Target::Artifact(a) => {
            let path = store.artifact_path(a.id)?;
            let job = store.producer(a.id, None, path.as_deref())?.ok_or_else(|| {
                CliError::usage(format!(
                    "{}: no recorded job produced this artifact, so it has no provenance to compare",
                    safe(name)
                ))
            })?;
            Ok(Side {
                job,
                artifact: Some((a.hash, a.size)),
            })
        }
    }
}

/// (only in A, only in B, in both with different values), by key.
type KeyDiff = (
    Vec<(String, String)>,
    Vec<(String, String)>,
    Vec<(String, String, String)>,
);

fn compare(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> KeyDiff {
    let mut d: KeyDiff = (vec![], vec![], vec![]);
    for (k, va) in a {
        match b.get(k) {
            None => d.0.push((k.clone(), va.clone())),
            Some(vb) if vb != va => d.2.push((k.clone(), va.clone(), vb.clone())),
            _ => {}
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            d.1.push((k.clone(), vb.clone()));
        }
    }
    d
}

fn diff_json(d: &KeyDiff) -> Value {
    json!({
        "removed": d.0.iter().map(|(k, v)| json!({"key": k, "a": v})).collect::<Vec<_>>(),
        "added": d.1.iter().map(|(k, v)| json!({"key": k, "b": v})).collect::<Vec<_>>(),
        "changed": d.2.iter().map(|(k, a, b)| json!({"key": k, "a": a, "b": b})).collect::<Vec<_>>(),
    })
}

fn is_empty(d: &KeyDiff) -> bool {
    d.0.is_empty() && d.1.is_empty() && d.2.is_empty()
}

/// The facts compared, by section, each a key → value map.
fn facts(store: &Store, s: &Side) -> Result<BTreeMap<&'static str, BTreeMap<String, String>>> {
    let j = &s.job;
    let mut f: BTreeMap<&'static str, BTreeMap<String, String>> = BTreeMap::new();
    let one = |k: &str, v: String| BTreeMap::from([(k.to_string(), v)]);
    if let Some((hash, size)) = &s.artifact {
        f.insert("artifact", one("content", format!("{hash} ({size} B)")));
    }
    f.insert("command", one("argv", command(&j.command)));
    let git = j
        .git
        .as_ref()
        .map_or("(not a git repository)".to_string(), |g| {
            format!(
                "{}{}",
                g.commit.as_deref().unwrap_or("(no commit)"),
                if g.dirty {
                    " + uncommitted changes"
                } else {
                    ""
                }
            )
        });
    f.insert("git", one("commit", git));
    f.insert(
        "inputs",
        store
            .job_inputs(j.id)?
            .into_iter()
            .map(|i| (i.path, i.hash))
            .collect(),
    );
    f.insert(
        "interpreters",
        j.runtime
            .interpreters
            .iter()
            .map(|i| (i.path.clone(), i.version.clone().unwrap_or_default()))
            .collect(),
    );
    f.insert(
        "packages",
        j.runtime
            .distributions
            .iter()
            .map(|d| (d.name.clone(), d.version.clone()))
            .collect(),
    );
    f.insert(
        "trackers",
        j.trackers
            .iter()
            .map(|t| {
                (
                    format!("{} {}", t.tracker, t.run_id),
                    t.project.clone().unwrap_or_default(),
                )
            })
            .collect(),
    );
    Ok(f)
}

fn title(s: &Side) -> String {
    let what = match &s.artifact {
        Some((hash, _)) => format!("artifact {} from ", short_hash(hash)),
        None => String::new(),
    };
    format!(
        "{what}@{} {}  ({})",
        s.job.step,
        command(&s.job.command),
        &s.job.uid[..8]
    )
}

pub fn diff(store: &Store, cwd: &Path, root: &Path, a: &str, b: &str, as_json: bool) -> Result<()> {
    let (sa, sb) = (side(store, cwd, a)?, side(store, cwd, b)?);
    let (fa, fb) = (facts(store, &sa)?, facts(store, &sb)?);
    let empty = BTreeMap::new();
    let sections: Vec<(&str, KeyDiff)> = fa
        .keys()
        .chain(fb.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| {
            (
                *k,
                compare(fa.get(k).unwrap_or(&empty), fb.get(k).unwrap_or(&empty)),
            )
        })
        .collect();
    if as_json {
        let mut out = serde_json::Map::new();
        out.insert("a".into(), json!({"uid": sa.job.uid, "step": sa.job.step, "artifact": sa.artifact.as_ref().map(|x| &x.0)}));
        out.insert("b".into(), json!({"uid": sb.job.uid, "step": sb.job.step, "artifact": sb.artifact.as_ref().map(|x| &x.0)}));
        for (name, d) in &sections {
            out.insert(name.to_string(), diff_json(d));
        }
        print_json(&Value::Object(out));
        return Ok(());
    }
    outln!("A: {}", title(&sa));
    outln!("B: {}", title(&sb));
    let root = root.to_string_lossy();
    let shown = |section: &str, v: &str| -> String {
        match section {
            "inputs" => short_hash(v).to_string(),
            _ => safe(v),
        }
    };
    let key = |section: &str, k: &str| -> String {
        if section == "inputs" {
            relative(k, &root)
        } else {
            safe(k)
        }
    };
    let mut same = true;
    for (name, d) in &sections {
        if is_empty(d) {
            continue;
        }
        same = false;
        outln!("{name}:");
        for (k, va, vb) in &d.2 {
            outln!(
                "  ~ {}  {} → {}",
                key(name, k),
                shown(name, va),
                shown(name, vb)
            );
        }
        for (k, v) in &d.0 {
            outln!("  - {}  {}", key(name, k), shown(name, v));
        }
        for (k, v) in &d.1 {
            outln!("  + {}  {}", key(name, k), shown(name, v));
        }
    }
    if same {
        outln!("same provenance: inputs, command, git commit, interpreters, packages and tracker runs all match");
    }
    Ok(())
}
