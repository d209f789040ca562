//! `roar label set|show|history|rm|cp`: user metadata on jobs, artifacts
//! and sessions. Every change writes a new version of the target's
//! document; `labels.history_retention` caps how many are kept.

use std::path::Path;

use roar_collector::config::Config;
use roar_collector::labels::{display_value, parse_assignment, Document, LabelKind, Origin};
use roar_collector::store::{LabelVersion, Store};
use serde_json::{json, Value};

use crate::error::{CliError, Result};
use crate::human::{safe, short_hash, timestamp};
use crate::out::outln;
use crate::project::Project;
use crate::target;
use crate::view::print_json;

/// A labelled thing: its kind, its row id and how to name it to the user.
pub struct LabelTarget {
    pub kind: LabelKind,
    pub id: i64,
    pub name: String,
}

/// `job @N|UID`, `artifact PATH|HASH`, `dag current|SESSION-HASH`.
pub fn resolve(store: &Store, cwd: &Path, kind: &str, name: &str) -> Result<LabelTarget> {
    let kind = LabelKind::named(kind).ok_or_else(|| {
        CliError::usage(format!(
            "{}: a label target is `job @N|UID`, `artifact PATH|HASH` or `dag current|HASH`",
            safe(kind)
        ))
    })?;
    match kind {
        LabelKind::Job => match target::resolve(store, cwd, name)? {
            target::Target::Job(j) => Ok(LabelTarget {
                kind,
                id: j.id,
                name: format!("job @{} ({})", j.step, &j.uid[..8]),
            }),
            target::Target::Artifact(_) => Err(CliError::usage(format!(
                "{}: an artifact, not a job (use `artifact {}`)",
                safe(name),
                safe(name)
            ))),
        },
        LabelKind::Artifact => match target::resolve(store, cwd, name)? {
            target::Target::Artifact(a) => Ok(LabelTarget {
                kind,
                id: a.id,
                name: format!("artifact {}", short_hash(&a.hash)),
            }),
            target::Target::Job(_) => Err(CliError::usage(format!(
                "{}: a job, not an artifact (use `job {}`)",
                safe(name),
                safe(name)
            ))),
        },
        LabelKind::Dag => {
            let session = if name == "current" {
                store.active_session()?.ok_or_else(|| {
                    CliError::usage("no session yet; record a job with `roar run COMMAND` first")
                })?
            } else {
                let hex = !name.is_empty() && name.chars().all(|c| c.is_ascii_hexdigit());
                let mut found = if hex {
                    store.sessions_by_hash_prefix(name)?
                } else {
                    vec![]
                };
                match found.len() {
                    1 => found.remove(0),
                    0 => {
                        return Err(CliError::usage(format!(
                            "{}: no such session (use `dag current` or a session hash prefix)",
                            safe(name)
                        )))
                    }
                    _ => {
                        let c: Vec<String> = found.iter().map(|s| s.hash.clone()).collect();
                        return Err(CliError::usage(format!(
                            "{} is ambiguous; it matches sessions {}",
                            safe(name),
                            c.join(", ")
                        )));
                    }
                }
            };
            Ok(LabelTarget {
                kind,
                id: session.id,
                name: format!("dag {}", short_hash(&session.hash)),
            })
        }
    }
}

fn current(store: &Store, t: &LabelTarget) -> Result<Document> {
    Ok(store
        .labels(t.kind, t.id)?
        .map(|v| v.document)
        .unwrap_or_default())
}

fn retention(project: &Project) -> Result<Option<u32>> {
    let config = Config::load(&project.config_path()).map_err(CliError::failure)?;
    Ok(config.count("labels.history_retention"))
}

fn save(store: &mut Store, project: &Project, t: &LabelTarget, doc: &Document) -> Result<()> {
    let version = store.write_labels(t.kind, t.id, doc, Origin::User, retention(project)?)?;
    outln!("{}: labels version {version}", t.name);
    Ok(())
}

pub fn set(store: &mut Store, project: &Project, t: &LabelTarget, pairs: &[String]) -> Result<()> {
    let mut doc = current(store, t)?;
    for pair in pairs {
        let (key, value) = parse_assignment(pair).map_err(CliError::usage)?;
        doc.set(&key, value, Origin::User)
            .map_err(CliError::usage)?;
    }
    save(store, project, t, &doc)
}

pub fn rm(store: &mut Store, project: &Project, t: &LabelTarget, keys: &[String]) -> Result<()> {
    let mut doc = current(store, t)?;
    for key in keys {
        doc.remove(key)
            .map_err(|e| CliError::usage(format!("{}: {e}", t.name)))?;
    }
    save(store, project, t, &doc)
}

/// The source's user labels become the destination's next version; the
/// destination keeps its own system labels (they describe it, not the source).
pub fn cp(
    store: &mut Store,
    project: &Project,
    src: &LabelTarget,
    dst: &LabelTarget,
) -> Result<()> {
    let copied = current(store, src)?.user_labels();
    if copied.is_empty() {
        return Err(CliError::usage(format!(
            "{} has no labels to copy",
            src.name
        )));
    }
    let mut doc = current(store, dst)?.system_only();
    for (key, value) in copied {
        doc.set(&key, value, Origin::User)
            .map_err(|e| CliError::usage(format!("{}: {e}", dst.name)))?;
    }
    save(store, project, dst, &doc)
}

fn origins_json(doc: &Document) -> Value {
    let flat: serde_json::Map<String, Value> = doc
        .flat()
        .into_iter()
        .map(|(k, _)| {
            let origin = doc.origin(&k).name();
            (k, json!(origin))
        })
        .collect();
    Value::Object(flat)
}

fn version_json(v: &LabelVersion) -> Value {
    json!({
        "version": v.version,
        "created_at": v.created_at,
        "origin": v.origin.name(),
        "labels": Value::Object(v.document.root.clone()),
        "origins": origins_json(&v.document),
    })
}

/// `key=value` lines, sorted; roar's own labels marked `# system`.
fn print_flat(doc: &Document, indent: &str) {
    for (key, value) in doc.flat() {
        let mark = match doc.origin(&key) {
            Origin::System => "  # system",
            Origin::User => "",
        };
        outln!("{indent}{key}={}{mark}", safe(&display_value(&value)));
    }
}

pub fn show(store: &Store, t: &LabelTarget, as_json: bool) -> Result<()> {
    let latest = store.labels(t.kind, t.id)?;
    if as_json {
        let v = match &latest {
            Some(v) => version_json(v),
            None => json!({"version": null, "labels": {}, "origins": {}}),
        };
        print_json(&v);
    } else if let Some(v) = latest {
        print_flat(&v.document, "");
    }
    Ok(())
}

pub fn history(store: &Store, t: &LabelTarget, as_json: bool) -> Result<()> {
    let versions = store.label_history(t.kind, t.id)?;
    if as_json {
        print_json(&Value::Array(versions.iter().map(version_json).collect()));
        return Ok(());
    }
    for v in &versions {
        outln!(
            "version {}  {}  {}",
            v.version,
            timestamp(v.created_at),
            v.origin.name()
        );
        print_flat(&v.document, "  ");
    }
    Ok(())
}
