//! Label documents in the store: every version kept in `label_versions`,
//! the current one flattened into `label_values` for search. Search
//! predicates become set algebra over indexed clauses (INTERSECT, UNION,
//! EXCEPT), so filtering happens in SQL.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::{Map, Value};

use super::{now_unix, Result, Store};
use crate::labels::query::{Expr, Op};
use crate::labels::{Document, LabelKind, Origin};

#[derive(Debug, Clone, PartialEq)]
pub struct LabelVersion {
    pub version: i64,
    pub created_at: f64,
    /// Who wrote this version.
    pub origin: Origin,
    pub document: Document,
}

/// A labelled record matching a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub kind: LabelKind,
    pub target_id: i64,
}

fn origin_named(name: &str) -> Origin {
    if name == "system" {
        Origin::System
    } else {
        Origin::User
    }
}

fn version_from_row(row: &rusqlite::Row) -> Result<LabelVersion> {
    let document: String = row.get(3)?;
    let origins: String = row.get(4)?;
    Ok(LabelVersion {
        version: row.get(0)?,
        created_at: row.get(1)?,
        origin: origin_named(&row.get::<_, String>(2)?),
        document: Document {
            root: serde_json::from_str::<Map<String, Value>>(&document).unwrap_or_default(),
            origins: serde_json::from_str::<BTreeMap<String, Origin>>(&origins).unwrap_or_default(),
        },
    })
}

/// The newest version of a target's labels.
fn current_version(
    conn: &rusqlite::Connection,
    kind: LabelKind,
    target_id: i64,
) -> Result<Option<LabelVersion>> {
    conn.prepare_cached(
        "SELECT version, created_at, origin, document, origins FROM label_versions
         WHERE kind = ?1 AND target_id = ?2 ORDER BY version DESC LIMIT 1",
    )?
    .query_row(params![kind.name(), target_id], version_from_row)
    .optional()
}

/// A leaf as `label_values` holds it: (type, num, str).
fn leaf_columns(v: &Value) -> (&'static str, Option<f64>, Option<String>) {
    match v {
        Value::Bool(b) => ("bool", Some(f64::from(u8::from(*b))), None),
        Value::Number(n) => ("number", n.as_f64(), None),
        Value::String(s) => ("string", None, Some(s.clone())),
        // Documents hold only scalars and objects; anything else is text.
        other => ("string", None, Some(other.to_string())),
    }
}

/// Writes `doc` as the next version of the target's labels and makes it the
/// searchable one; keeps at most `retention` versions when given.
pub(super) fn write_version(
    tx: &Transaction,
    kind: LabelKind,
    target_id: i64,
    doc: &Document,
    origin: Origin,
    retention: Option<u32>,
) -> Result<i64> {
    let version: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM label_versions WHERE kind = ?1 AND target_id = ?2",
        params![kind.name(), target_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO label_versions (kind, target_id, version, created_at, origin, document, origins)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            kind.name(),
            target_id,
            version,
            now_unix(),
            origin.name(),
            Value::Object(doc.root.clone()).to_string(),
            serde_json::to_string(&doc.origins).expect("origins serialise"),
        ],
    )?;
    tx.execute(
        "DELETE FROM label_values WHERE kind = ?1 AND target_id = ?2",
        params![kind.name(), target_id],
    )?;
    insert_values(tx, kind, target_id, doc)?;
    if let Some(keep) = retention {
        tx.execute(
            "DELETE FROM label_versions WHERE kind = ?1 AND target_id = ?2 AND version <= ?3",
            params![kind.name(), target_id, version - i64::from(keep)],
        )?;
    }
    Ok(version)
}

/// SQL selecting `(kind, target_id)` of the records matching `expr`, and
/// its parameters.
fn compile(expr: &Expr, sql: &mut String, args: &mut Vec<SqlValue>) {
    const UNIVERSE: &str = "SELECT DISTINCT kind, target_id FROM label_values";
    let mut binary = |a: &Expr, set_op: &str, b: &Expr, sql: &mut String| {
        sql.push_str("SELECT * FROM (");
        compile(a, sql, args);
        sql.push_str(&format!(") {set_op} SELECT * FROM ("));
        compile(b, sql, args);
        sql.push(')');
    };
    match expr {
        Expr::And(a, b) => binary(a, "INTERSECT", b, sql),
        Expr::Or(a, b) => binary(a, "UNION", b, sql),
        Expr::Not(a) => {
            sql.push_str(UNIVERSE);
            sql.push_str(" EXCEPT SELECT * FROM (");
            compile(a, sql, args);
            sql.push(')');
        }
        Expr::Has(key) => {
            // The key itself, or anything nested under it ('/' follows '.').
            sql.push_str(
                "SELECT kind, target_id FROM label_values WHERE key = ? OR (key > ? AND key < ?)",
            );
            args.push(SqlValue::Text(key.clone()));
            args.push(SqlValue::Text(format!("{key}.")));
            args.push(SqlValue::Text(format!("{key}/")));
        }
        Expr::Cmp { key, op, value } => {
            let (ty, num, text) = leaf_columns(value);
            let (column, arg) = match (num, text) {
                (Some(n), _) => ("num", SqlValue::Real(n)),
                (None, Some(s)) => ("str", SqlValue::Text(s)),
                (None, None) => ("num", SqlValue::Null),
            };
            args.push(SqlValue::Text(key.clone()));
            if *op == Op::Ne {
                // Present, with another value (of this type or another).
                sql.push_str(&format!(
                    "SELECT kind, target_id FROM label_values WHERE key = ? \
                     AND NOT (type = ? AND {column} IS ?)"
                ));
            } else {
                sql.push_str(&format!(
                    "SELECT kind, target_id FROM label_values WHERE key = ? \
                     AND type = ? AND {column} {} ?",
                    op.sql()
                ));
            }
            args.push(SqlValue::Text(ty.to_string()));
            args.push(arg);
        }
    }
}

/// roar's own labels of a new job, as its version 0 (origin system), so a
/// user's first `label set` is version 1.
pub(super) fn write_job_auto_labels(
    tx: &Transaction,
    job_id: i64,
    meta: &roar_protocol::JobMeta,
    tracer: &str,
) -> Result<()> {
    let mut doc = Document::default();
    for (key, value) in [
        ("roar.exit_status", Value::from(meta.exit_status)),
        ("roar.tracer.backend", Value::from(tracer)),
    ] {
        doc.set(key, value, Origin::System)
            .expect("roar's keys are valid and distinct");
    }
    tx.execute(
        "INSERT INTO label_versions (kind, target_id, version, created_at, origin, document, origins)
         VALUES ('job', ?1, 0, ?2, 'system', ?3, ?4)",
        params![
            job_id,
            now_unix(),
            Value::Object(doc.root.clone()).to_string(),
            serde_json::to_string(&doc.origins).expect("origins serialise"),
        ],
    )?;
    insert_values(tx, LabelKind::Job, job_id, &doc)
}

/// Sets roar's own labels on a target, keeping any key a user set; writes a
/// version only when something changed.
pub(super) fn write_system_labels(
    tx: &Transaction,
    kind: LabelKind,
    target_id: i64,
    pairs: &[(&str, Value)],
) -> Result<()> {
    let current = current_version(tx, kind, target_id)?;
    let mut doc = current.map(|v| v.document).unwrap_or_default();
    let before = doc.clone();
    for (key, value) in pairs {
        // A user's value at a conflicting place wins too: skip the key.
        let _ = doc.set(key, value.clone(), Origin::System);
    }
    if doc != before {
        write_version(tx, kind, target_id, &doc, Origin::System, None)?;
    }
    Ok(())
}

fn insert_values(tx: &Transaction, kind: LabelKind, target_id: i64, doc: &Document) -> Result<()> {
    let mut leaf = tx.prepare_cached(
        "INSERT INTO label_values (kind, target_id, key, type, num, str) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (key, value) in doc.flat() {
        let (ty, num, s) = leaf_columns(&value);
        leaf.execute(params![kind.name(), target_id, key, ty, num, s])?;
    }
    Ok(())
}

impl Store {
    /// The current labels of a target (`None`: never labelled).
    pub fn labels(&self, kind: LabelKind, target_id: i64) -> Result<Option<LabelVersion>> {
        current_version(&self.conn, kind, target_id)
    }

    /// Every kept version of a target's labels, oldest first.
    pub fn label_history(&self, kind: LabelKind, target_id: i64) -> Result<Vec<LabelVersion>> {
        let mut stmt = self.conn.prepare(
            "SELECT version, created_at, origin, document, origins FROM label_versions
             WHERE kind = ?1 AND target_id = ?2 ORDER BY version",
        )?;
        let rows = stmt.query_map(params![kind.name(), target_id], version_from_row)?;
        rows.collect()
    }

    /// Stores `doc` as a new version of the target's labels.
    pub fn write_labels(
        &mut self,
        kind: LabelKind,
        target_id: i64,
        doc: &Document,
        origin: Origin,
        retention: Option<u32>,
    ) -> Result<i64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = write_version(&tx, kind, target_id, doc, origin, retention)?;
        tx.commit()?;
        Ok(version)
    }

    /// Labelled records matching `expr`, optionally of one kind, ordered by
    /// the value at `sort` (`(key, descending)`; records without it last),
    /// at most `top`.
    pub fn search_labels(
        &self,
        expr: &Expr,
        kind: Option<LabelKind>,
        sort: Option<(&str, bool)>,
        top: Option<usize>,
    ) -> Result<Vec<SearchHit>> {
        let mut matching = String::new();
        let mut args = Vec::new();
        compile(expr, &mut matching, &mut args);
        let mut sql = format!("SELECT h.kind, h.target_id FROM ({matching}) h");
        if let Some((key, _)) = sort {
            sql.push_str(
                " LEFT JOIN label_values s ON s.kind = h.kind AND s.target_id = h.target_id AND s.key = ?",
            );
            args.push(SqlValue::Text(key.to_string()));
        }
        if let Some(k) = kind {
            sql.push_str(" WHERE h.kind = ?");
            args.push(SqlValue::Text(k.name().to_string()));
        }
        sql.push_str(match sort {
            Some((_, false)) => {
                " ORDER BY s.key IS NULL, s.type, s.num, s.str, h.kind, h.target_id"
            }
            Some((_, true)) => {
                " ORDER BY s.key IS NULL, s.type, s.num DESC, s.str DESC, h.kind, h.target_id"
            }
            None => " ORDER BY h.kind, h.target_id",
        });
        if let Some(n) = top {
            sql.push_str(" LIMIT ?");
            args.push(SqlValue::Integer(n as i64));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| {
            let kind: String = r.get(0)?;
            Ok(SearchHit {
                kind: LabelKind::named(&kind).unwrap_or(LabelKind::Job),
                target_id: r.get(1)?,
            })
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::parse_value;
    use crate::labels::query::parse;

    fn doc(pairs: &[(&str, &str)]) -> Document {
        let mut d = Document::default();
        for (k, v) in pairs {
            d.set(k, parse_value(v), Origin::User).unwrap();
        }
        d
    }

    fn ids(store: &Store, q: &str) -> Vec<i64> {
        let hits = store
            .search_labels(&parse(q).unwrap(), None, None, None)
            .unwrap();
        hits.into_iter().map(|h| h.target_id).collect()
    }

    #[test]
    fn versions_retention_and_search_truth_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("roar.db")).unwrap();
        let records: [&[(&str, &str)]; 4] = [
            &[("acc", "0.95"), ("stage", "baseline"), ("n", "\"10\"")],
            &[("acc", "0.80"), ("stage", "tuned"), ("n", "10")],
            &[
                ("acc", "0.91"),
                ("stage", "baseline"),
                ("ok", "true"),
                ("m.x", "1"),
            ],
            &[("stage", "\"10\"")],
        ];
        for (i, r) in records.iter().enumerate() {
            store
                .write_labels(LabelKind::Job, i as i64 + 1, &doc(r), Origin::User, None)
                .unwrap();
        }
        let cases: [(&str, &[i64]); 14] = [
            ("acc>0.9 AND stage=baseline", &[1, 3]),
            ("acc>0.9 stage=baseline", &[1, 3]),
            ("acc>=0.95 OR stage=tuned", &[1, 2]),
            ("NOT stage=baseline", &[2, 4]),
            ("stage!=baseline", &[2, 4]),
            ("has:ok", &[3]),
            ("has:m", &[3]),
            ("ok=true", &[3]),
            ("ok!=true", &[]),
            // Types never mix: the string "10" is not the number 10.
            ("n>9", &[2]),
            ("n=\"10\"", &[1]),
            ("stage=10", &[]),
            ("n<\"9\"", &[1]),
            ("NOT has:acc", &[4]),
        ];
        for (q, want) in cases {
            assert_eq!(ids(&store, q), want, "{q}");
        }
        let top = store
            .search_labels(
                &parse("has:stage").unwrap(),
                None,
                Some(("acc", true)),
                Some(2),
            )
            .unwrap();
        assert_eq!(top.iter().map(|h| h.target_id).collect::<Vec<_>>(), [1, 3]);

        // Versions accumulate; retention keeps the newest.
        let mut d = doc(&[("lr", "0.1")]);
        for (i, v) in ["0.2", "0.3"].iter().enumerate() {
            store
                .write_labels(LabelKind::Artifact, 9, &d, Origin::User, None)
                .unwrap();
            d.set("lr", parse_value(v), Origin::User).unwrap();
            assert_eq!(
                store.label_history(LabelKind::Artifact, 9).unwrap().len(),
                i + 1
            );
        }
        store
            .write_labels(LabelKind::Artifact, 9, &d, Origin::User, Some(2))
            .unwrap();
        let h = store.label_history(LabelKind::Artifact, 9).unwrap();
        assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(h[1].document.root["lr"], serde_json::json!(0.3));
        // Another kind with the same id is another record.
        assert!(store.labels(LabelKind::Job, 9).unwrap().is_none());
    }
}
