//! Label documents: user-attached metadata on jobs, artifacts and sessions.
//! A document is a JSON object; dotted keys (`metrics.accuracy`) address
//! nested objects; values keep natural types. Each leaf remembers who set
//! it (`user` or `system`): roar's own labels never replace a user's.

pub mod query;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a label is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelKind {
    Job,
    Artifact,
    /// A session (a pipeline run, "dag" in the CLI).
    Dag,
}

impl LabelKind {
    pub fn name(self) -> &'static str {
        match self {
            LabelKind::Job => "job",
            LabelKind::Artifact => "artifact",
            LabelKind::Dag => "dag",
        }
    }

    pub fn named(name: &str) -> Option<LabelKind> {
        [LabelKind::Job, LabelKind::Artifact, LabelKind::Dag]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    User,
    System,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::User => "user",
            Origin::System => "system",
        }
    }
}

/// A label document and the origin of each of its leaves (by dotted key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub root: Map<String, Value>,
    pub origins: BTreeMap<String, Origin>,
}

/// A key's dot-separated parts, each non-empty and made of letters, digits,
/// `_` or `-`.
pub fn key_parts(key: &str) -> Result<Vec<&str>, String> {
    let parts: Vec<&str> = key.split('.').collect();
    let valid = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if parts.iter().all(valid) {
        Ok(parts)
    } else {
        Err(format!(
            "{key:?} is not a label key (dot-separated names of letters, digits, _ and -)"
        ))
    }
}

/// A value as typed on the command line: `true`/`false`, an integer, a
/// decimal number, or else a string. Quotes (`"10"`, `'on'`) keep a string.
pub fn parse_value(text: &str) -> Value {
    for q in ['"', '\''] {
        if text.len() >= 2 && text.starts_with(q) && text.ends_with(q) {
            return Value::String(text[1..text.len() - 1].to_string());
        }
    }
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    // Only plain decimal notation: "inf", "nan" or "1e5" stay strings.
    let decimal = text.contains('.')
        && text
            .trim_start_matches(['-', '+'])
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
    if decimal {
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

/// `key=value` from the command line.
pub fn parse_assignment(arg: &str) -> Result<(String, Value), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?} is not KEY=VALUE"))?;
    key_parts(key)?;
    Ok((key.to_string(), parse_value(value)))
}

impl Document {
    /// Sets `key`. A system value does not replace a user's (returns false).
    /// A key that would turn a value into an object, or an object into a
    /// value, is an error.
    pub fn set(&mut self, key: &str, value: Value, origin: Origin) -> Result<bool, String> {
        let parts = key_parts(key)?;
        if origin == Origin::System && self.origins.get(key) == Some(&Origin::User) {
            return Ok(false);
        }
        let (last, parents) = parts.split_last().expect("split gives one part at least");
        let mut map = &mut self.root;
        for (i, part) in parents.iter().enumerate() {
            let entry = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            map = entry.as_object_mut().ok_or_else(|| {
                let prefix = parts[..=i].join(".");
                format!(
                    "{prefix} is a value, so {key} cannot be set under it (remove {prefix} first)"
                )
            })?;
        }
        if map.get(*last).is_some_and(Value::is_object) {
            return Err(format!(
                "{key} holds nested labels ({key}.*), so it cannot be set to a value (remove {key} first)"
            ));
        }
        map.insert(last.to_string(), value);
        self.origins.insert(key.to_string(), origin);
        Ok(true)
    }

    /// Removes `key`: a value, or a nested object with everything under it.
    pub fn remove(&mut self, key: &str) -> Result<(), String> {
        let parts = key_parts(key)?;
        if !remove_path(&mut self.root, &parts) {
            return Err(format!("no label {key}"));
        }
        let nested = format!("{key}.");
        self.origins
            .retain(|k, _| k != key && !k.starts_with(&nested));
        Ok(())
    }

    /// Every leaf as (dotted key, value), sorted by key.
    pub fn flat(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        flatten("", &self.root, &mut out);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// The user's labels of this document: what `label cp` copies (roar's
    /// own labels describe their own record).
    pub fn user_labels(&self) -> Vec<(String, Value)> {
        self.flat()
            .into_iter()
            .filter(|(k, _)| self.origin(k) == Origin::User)
            .collect()
    }

    /// This document's system labels only.
    pub fn system_only(&self) -> Document {
        let mut d = Document::default();
        for (k, v) in self.flat() {
            if self.origin(&k) == Origin::System {
                d.set(&k, v, Origin::System)
                    .expect("keys of one document do not conflict");
            }
        }
        d
    }

    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).copied().unwrap_or(Origin::User)
    }
}

/// Removes the value at `parts`, then any object left empty above it.
fn remove_path(map: &mut Map<String, Value>, parts: &[&str]) -> bool {
    match parts {
        [] => false,
        [last] => map.remove(*last).is_some(),
        [first, rest @ ..] => {
            let Some(Value::Object(child)) = map.get_mut(*first) else {
                return false;
            };
            let removed = remove_path(child, rest);
            if child.is_empty() {
                map.remove(*first);
            }
            removed
        }
    }
}

fn flatten(prefix: &str, map: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(child) => flatten(&key, child, out),
            leaf => out.push((key, leaf.clone())),
        }
    }
}

/// A value as `show` prints it: strings that would read back as another
/// type are quoted, so the output can be pasted into `label set`.
pub fn display_value(v: &Value) -> String {
    let plain = |s: &str| {
        !s.is_empty()
            && parse_value(s) == Value::String(s.to_string())
            && !s.contains(|c: char| c.is_whitespace() || c == '#' || c == '"' || c == '\'')
    };
    match v {
        Value::String(s) if !plain(s) => format!("{s:?}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_keep_natural_types() {
        assert_eq!(parse_value("0.001"), json!(0.001));
        assert_eq!(parse_value("42"), json!(42));
        assert_eq!(parse_value("-3"), json!(-3));
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("\"10\""), json!("10"));
        assert_eq!(parse_value("'true'"), json!("true"));
        for s in ["resnet50", "1e5", "inf", "nan", "1.2.3", "", "v1.0"] {
            assert_eq!(parse_value(s), json!(s), "{s}");
        }
        assert_eq!(parse_value("1.0"), json!(1.0));
        assert!(parse_value("1.0").is_f64());
    }

    #[test]
    fn dotted_keys_nest_and_conflicts_are_errors() {
        let mut d = Document::default();
        for a in [
            "model.name=resnet50",
            "metrics.accuracy=0.94",
            "trained=true",
        ] {
            let (k, v) = parse_assignment(a).unwrap();
            d.set(&k, v, Origin::User).unwrap();
        }
        assert_eq!(
            Value::Object(d.root.clone()),
            json!({"model": {"name": "resnet50"}, "metrics": {"accuracy": 0.94}, "trained": true})
        );
        let err = d.set("model", json!(3), Origin::User).unwrap_err();
        assert!(err.contains("model holds nested labels"), "{err}");
        let err = d.set("trained.when", json!(1), Origin::User).unwrap_err();
        assert!(err.contains("trained is a value"), "{err}");
        assert!(parse_assignment("bad key=1").is_err());
        assert!(parse_assignment("a..b=1").is_err());
        assert!(parse_assignment("novalue").is_err());
        let flat: Vec<String> = d.flat().into_iter().map(|(k, _)| k).collect();
        assert_eq!(flat, ["metrics.accuracy", "model.name", "trained"]);
    }

    #[test]
    fn removal_prunes_and_system_never_replaces_user() {
        let mut d = Document::default();
        d.set("a.b.c", json!(1), Origin::User).unwrap();
        d.set("a.d", json!(2), Origin::User).unwrap();
        d.remove("a.b").unwrap();
        assert_eq!(Value::Object(d.root.clone()), json!({"a": {"d": 2}}));
        assert!(d.remove("a.b").is_err());
        d.remove("a").unwrap();
        assert!(d.is_empty() && d.origins.is_empty());

        d.set("roar.exit_status", json!(1), Origin::User).unwrap();
        assert!(!d.set("roar.exit_status", json!(0), Origin::System).unwrap());
        assert_eq!(d.root["roar"]["exit_status"], json!(1));
        assert!(d
            .set("roar.tracer.backend", json!("preload"), Origin::System)
            .unwrap());
        assert_eq!(d.origin("roar.tracer.backend"), Origin::System);
    }

    #[test]
    fn display_round_trips_through_parse() {
        for v in [
            json!("10"),
            json!(10),
            json!("true"),
            json!(0.5),
            json!("x y"),
            json!(""),
        ] {
            assert_eq!(parse_value(&display_value(&v)), v, "{v}");
        }
    }
}
