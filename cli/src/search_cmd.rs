//! `roar search PREDICATE`: labelled jobs, artifacts and sessions of the
//! project whose current labels match (see roar_collector::labels::query
//! for the language and its type rules), optionally sorted as a leaderboard.

use roar_collector::labels::query::parse;
use roar_collector::labels::{display_value, LabelKind};
use roar_collector::store::{SearchHit, Store};
use serde_json::{json, Value};

use crate::error::{CliError, Result};
use crate::human::{command, safe, short_hash};
use crate::out::outln;
use crate::view::print_json;

pub struct SearchOptions<'a> {
    pub query: &'a str,
    pub kind: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub desc: bool,
    pub top: Option<usize>,
    pub json: bool,
}

/// How a hit is named, and the command that shows it with its lineage.
struct Described {
    kind: LabelKind,
    id: String,
    title: String,
    see: String,
}

fn describe(store: &Store, hit: &SearchHit) -> Result<Described> {
    Ok(match hit.kind {
        LabelKind::Job => {
            let j = store.job(hit.target_id)?;
            Described {
                kind: hit.kind,
                title: format!("job @{} {}  {}", j.step, &j.uid[..8], command(&j.command)),
                see: format!("roar show {}", &j.uid[..8]),
                id: j.uid,
            }
        }
        LabelKind::Artifact => {
            let a = store.artifact(hit.target_id)?;
            let path = store.artifact_path(a.id)?.unwrap_or_default();
            Described {
                kind: hit.kind,
                title: format!("artifact {}  {}", short_hash(&a.hash), safe(&path)),
                see: format!("roar show {}", short_hash(&a.hash)),
                id: a.hash,
            }
        }
        LabelKind::Dag => {
            let s = store.session(hit.target_id)?;
            Described {
                kind: hit.kind,
                title: format!("dag {}", short_hash(&s.hash)),
                see: "roar dag".to_string(),
                id: s.hash,
            }
        }
    })
}

pub fn search(store: &Store, o: SearchOptions) -> Result<()> {
    let expr = parse(o.query)
        .map_err(|e| CliError::usage(format!("bad search predicate at {}", e.describe(o.query))))?;
    let kind = match o.kind {
        Some(k) => Some(LabelKind::named(k).ok_or_else(|| {
            CliError::usage(format!("--kind is job, artifact or dag, not {}", safe(k)))
        })?),
        None => None,
    };
    if let Some(key) = o.sort {
        roar_collector::labels::key_parts(key).map_err(CliError::usage)?;
    }
    let hits = store.search_labels(&expr, kind, o.sort.map(|k| (k, o.desc)), o.top)?;
    let mut out = Vec::new();
    for hit in &hits {
        let d = describe(store, hit)?;
        let labels = store
            .labels(hit.kind, hit.target_id)?
            .map(|v| v.document)
            .unwrap_or_default();
        if o.json {
            out.push(json!({
                "kind": d.kind.name(),
                "id": d.id,
                "labels": Value::Object(labels.root),
                "show": d.see,
            }));
            continue;
        }
        outln!("{}", d.title);
        let flat: Vec<String> = labels
            .flat()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", safe(&display_value(&v))))
            .collect();
        outln!("  {}", flat.join("  "));
        outln!("  lineage: {}", d.see);
    }
    if o.json {
        print_json(&Value::Array(out));
    } else if hits.is_empty() {
        eprintln!("roar: no labelled record matches");
    }
    Ok(())
}
