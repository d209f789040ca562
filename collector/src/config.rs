//! `.roar/config.toml`: the known keys, their types and defaults, reading
//! with validation, and edits that keep the user's comments and layout.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// A positive integer, or `unlimited` (the key unset).
    Count,
    /// A string.
    Text,
    /// A list of strings; `a,b,c` on the command line.
    List,
}

/// One configuration key.
pub struct KeySpec {
    /// Dotted: `table.key`.
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub doc: &'static str,
}

pub const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "filters.ignore_system_reads",
        kind: Kind::Bool,
        default: "true",
        doc: "drop reads of operating-system trees (/proc, /sys, /dev, /etc, /usr, ...)",
    },
    KeySpec {
        name: "filters.ignore_package_reads",
        kind: Kind::Bool,
        default: "true",
        doc: "drop interpreter, site-packages, virtualenv, conda and pyenv reads",
    },
    KeySpec {
        name: "filters.ignore_torch_cache",
        kind: Kind::Bool,
        default: "true",
        doc: "drop torch and triton caches (~/.cache/torch, ~/.triton, torchinductor_*)",
    },
    KeySpec {
        name: "filters.ignore_library_caches",
        kind: Kind::Bool,
        default: "true",
        doc: "drop library caches under ~/.cache (pip, huggingface, matplotlib, ...)",
    },
    KeySpec {
        name: "filters.ignore_tmp_files",
        kind: Kind::Bool,
        default: "true",
        doc: "drop files under /tmp and /var/tmp outside the project",
    },
    KeySpec {
        name: "analyzers.experiment_trackers",
        kind: Kind::Bool,
        default: "true",
        doc: "keep W&B, MLflow and Neptune folders out of lineage and record their run ids \
              (false: record those files as ordinary artifacts)",
    },
    KeySpec {
        name: "analyzers.experiment_trackers.wandb",
        kind: Kind::Bool,
        default: "true",
        doc: "the W&B analyzer (wandb/, *.wandb)",
    },
    KeySpec {
        name: "analyzers.experiment_trackers.mlflow",
        kind: Kind::Bool,
        default: "true",
        doc: "the MLflow analyzer (mlruns/, mlartifacts/, mlflow.db)",
    },
    KeySpec {
        name: "analyzers.experiment_trackers.neptune",
        kind: Kind::Bool,
        default: "true",
        doc: "the Neptune analyzer (.neptune/)",
    },
    KeySpec {
        name: "labels.history_retention",
        kind: Kind::Count,
        default: "unlimited",
        doc: "how many versions of each label document to keep",
    },
    KeySpec {
        name: "labels.auto_dataset_detect",
        kind: Kind::Bool,
        default: "true",
        doc: "label dataset-shaped output folders (dataset.id, dataset.modality, dataset.type)",
    },
    KeySpec {
        name: "collector.idle_timeout_s",
        kind: Kind::Count,
        default: "60",
        doc: "launcher mode: seconds the collector daemon waits with no job before it exits",
    },
    KeySpec {
        name: "glaas.url",
        kind: Kind::Text,
        default: "https://api.glaas.ai",
        doc: "the GLaaS server `roar register` talks to (env GLAAS_API_URL overrides)",
    },
    KeySpec {
        name: "glaas.scope",
        kind: Kind::Text,
        default: "anonymous",
        doc: "who may see registered lineage: anonymous, public, private or OWNER/PROJECT (`roar scope use`)",
    },
    KeySpec {
        name: "telemetry.enabled",
        kind: Kind::Bool,
        default: "true",
        doc: "anonymous usage telemetry for this project (see docs/telemetry.md; `roar telemetry --disable` for all)",
    },
    KeySpec {
        name: "telemetry.endpoint",
        kind: Kind::Text,
        default: "(glaas.url + /api/v1/telemetry/roar)",
        doc: "where telemetry goes; unset: glaas.url + /api/v1/telemetry/roar; set to \"\" to forbid uploads",
    },
    KeySpec {
        name: "registration.omit.enabled",
        kind: Kind::Bool,
        default: "true",
        doc: "redact secrets from commands, paths and labels before `roar register` sends them",
    },
    KeySpec {
        name: "registration.omit.env_vars.names",
        kind: Kind::List,
        default: "WANDB_API_KEY,OPENAI_API_KEY,ANTHROPIC_API_KEY,GITHUB_TOKEN,DATABASE_URL,AWS_SECRET_ACCESS_KEY",
        doc: "environment variables whose values are redacted",
    },
    KeySpec {
        name: "registration.omit.secrets.values",
        kind: Kind::List,
        default: "",
        doc: "literal values to redact",
    },
    KeySpec {
        name: "registration.omit.allowlist.patterns",
        kind: Kind::List,
        default: "",
        doc: "regular expressions of text never redacted",
    },
];

pub fn spec(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == name)
}

/// The configuration in force: the file's values over the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    doc: DocumentMut,
}

fn item<'a>(doc: &'a DocumentMut, name: &str) -> Option<&'a Item> {
    let mut item = doc.as_item();
    for part in name.split('.') {
        item = item.get(part)?;
    }
    Some(item)
}

/// Every leaf key of the document, dotted.
fn leaf_keys(prefix: &str, item: &Item, out: &mut Vec<String>) {
    if let Some(table) = item.as_table_like() {
        for (k, v) in table.iter() {
            let name = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            leaf_keys(&name, v, out);
        }
    } else {
        out.push(prefix.to_string());
    }
}

fn check_value(spec: &KeySpec, value: &Item) -> Result<(), String> {
    let ok = match spec.kind {
        Kind::Bool => value.as_bool().is_some(),
        Kind::Count => value
            .as_integer()
            .is_some_and(|n| n >= 1 && n <= u32::MAX as i64),
        Kind::Text => value.as_str().is_some(),
        Kind::List => value
            .as_array()
            .is_some_and(|a| a.iter().all(|v| v.as_str().is_some())),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} must be {}", spec.name, kind_name(spec.kind)))
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "a boolean (true or false)",
        Kind::Count => "a positive integer or unlimited",
        Kind::Text => "a string",
        Kind::List => "a list of strings",
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            doc: DocumentMut::new(),
        }
    }
}

impl Config {
    /// Parses and validates TOML text: unknown keys and ill-typed values are errors.
    pub fn parse(text: &str) -> Result<Config, String> {
        let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            e.to_string().lines().next().unwrap_or("").to_string()
        })?;
        let mut keys = Vec::new();
        leaf_keys("", doc.as_item(), &mut keys);
        for key in keys {
            let spec = spec(&key).ok_or_else(|| format!("unknown key {key}"))?;
            check_value(spec, item(&doc, &key).expect("listed keys exist"))?;
        }
        Ok(Config { doc })
    }

    /// Reads `path`; a missing file is the defaults.
    pub fn load(path: &Path) -> Result<Config, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The value of a known key as text (strings bare, lists `a,b`), and
    /// whether it is the default.
    pub fn get(&self, name: &str) -> Result<(String, bool), String> {
        let spec = spec(name).ok_or_else(|| unknown(name))?;
        Ok(match item(&self.doc, name).and_then(Item::as_value) {
            Some(Value::String(s)) => (s.value().clone(), false),
            Some(Value::Array(a)) => {
                let items: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                (items.join(","), false)
            }
            Some(v) => (v.clone().decorated("", "").to_string(), false),
            None => (spec.default.to_string(), true),
        })
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).expect("text() is called with known keys").0
    }

    /// A list key's items.
    pub fn list(&self, name: &str) -> Vec<String> {
        let (value, _) = self.get(name).expect("list() is called with known keys");
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn bool(&self, name: &str) -> bool {
        let (value, _) = self.get(name).expect("bool() is called with known keys");
        value == "true"
    }

    /// A count key's value; `None` is unlimited.
    pub fn count(&self, name: &str) -> Option<u32> {
        let (value, _) = self.get(name).expect("count() is called with known keys");
        value.parse().ok()
    }

    /// Sets a known key from its command-line text; the document keeps its
    /// comments and the order of everything else.
    pub fn set(&mut self, name: &str, text: &str) -> Result<(), String> {
        let spec = spec(name).ok_or_else(|| unknown(name))?;
        let bad = || format!("{name} must be {}, not {text:?}", kind_name(spec.kind));
        let value: Value = match (spec.kind, text) {
            (Kind::Bool, "true") => true.into(),
            (Kind::Bool, "false") => false.into(),
            (Kind::Count, "unlimited") => {
                self.unset(name);
                return Ok(());
            }
            (Kind::Count, n) => match n.parse::<u32>() {
                Ok(n) if n >= 1 => i64::from(n).into(),
                _ => return Err(bad()),
            },
            (Kind::Text, s) => s.into(),
            (Kind::List, s) => {
                let items: toml_edit::Array = s
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .collect();
                Value::Array(items)
            }
            _ => return Err(bad()),
        };
        let (table, key) = name.rsplit_once('.').expect("keys are dotted");
        if self.doc.as_table().is_empty() {
            // A comments-only file keeps them as trailing text; keep them on
            // top, above the first table.
            let header = self.doc.trailing().as_str().unwrap_or("").to_string();
            self.doc.set_trailing("");
            let mut first = toml_edit::Table::new();
            first.decor_mut().set_prefix(header);
            let top = table.split('.').next().expect("non-empty");
            self.doc[top] = Item::Table(first);
        }
        let mut item = self.doc.as_item_mut();
        let mut parent = String::new();
        for part in table.split('.') {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}.{part}")
            };
            match item.get(part) {
                None => item[part] = toml_edit::table(),
                // A switch that is on may grow per-item settings
                // (`experiment_trackers = true` → `[...experiment_trackers]`).
                Some(i) if i.as_bool() == Some(true) => item[part] = toml_edit::table(),
                Some(i) if !i.is_table_like() => {
                    return Err(format!(
                        "{parent} is {}, which turns all of it off; set {parent} true first",
                        i.as_value()
                            .map_or(String::new(), |v| v.clone().decorated("", "").to_string())
                    ))
                }
                Some(_) => {}
            }
            item = &mut item[part];
        }
        // A table of per-item settings already means "on".
        if item.get(key).is_some_and(Item::is_table_like) && value.as_bool() == Some(true) {
            return Ok(());
        }
        item[key] = toml_edit::value(value);
        Ok(())
    }

    /// Removes a key: its default applies again.
    fn unset(&mut self, name: &str) {
        let (table, key) = name.rsplit_once('.').expect("keys are dotted");
        let mut item = self.doc.as_item_mut();
        for part in table.split('.') {
            match item.get_mut(part) {
                Some(next) => item = next,
                None => return,
            }
        }
        if let Some(t) = item.as_table_like_mut() {
            t.remove(key);
        }
    }

    /// Writes the document atomically (a temporary file renamed over `path`).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, self.doc.to_string())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn unknown(name: &str) -> String {
    let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    format!("unknown key {name} (known keys: {})", known.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_values_and_validation() {
        let c = Config::parse("# mine\n[filters]\nignore_tmp_files = false\n").unwrap();
        assert!(!c.bool("filters.ignore_tmp_files"));
        assert!(c.bool("filters.ignore_system_reads"));
        assert_eq!(
            c.get("filters.ignore_system_reads").unwrap(),
            ("true".into(), true)
        );
        assert!(Config::parse("[filters]\nnope = true\n")
            .unwrap_err()
            .contains("unknown key filters.nope"));
        assert!(Config::parse("[filters]\nignore_tmp_files = 3\n")
            .unwrap_err()
            .contains("must be a boolean"));
        assert!(Config::parse("[filters\n").is_err());
        let mut c = Config::parse("[labels]\nhistory_retention = 5\n").unwrap();
        assert_eq!(c.count("labels.history_retention"), Some(5));
        assert!(Config::parse("[labels]\nhistory_retention = 0\n").is_err());
        assert!(c.set("labels.history_retention", "-1").is_err());
        c.set("labels.history_retention", "unlimited").unwrap();
        assert_eq!(c.count("labels.history_retention"), None);
        assert_eq!(
            c.get("labels.history_retention").unwrap(),
            ("unlimited".into(), true)
        );
    }

    #[test]
    fn set_keeps_comments_and_refuses_bad_input() {
        let mut c =
            Config::parse("# keep me\n[filters]\n# and me\nignore_tmp_files = true\n").unwrap();
        c.set("filters.ignore_tmp_files", "false").unwrap();
        c.set("filters.ignore_torch_cache", "false").unwrap();
        let text = c.doc.to_string();
        assert!(
            text.contains("# keep me") && text.contains("# and me"),
            "{text}"
        );
        assert!(text.contains("ignore_tmp_files = false"), "{text}");
        let again = Config::parse(&text).unwrap();
        assert!(!again.bool("filters.ignore_torch_cache"));
        assert!(c.set("filters.ignore_tmp_files", "yes").is_err());
        assert!(c.set("filters.bogus", "true").is_err());
        c.set("analyzers.experiment_trackers.wandb", "false")
            .unwrap();
        assert!(c.bool("analyzers.experiment_trackers"));
        assert!(!c.bool("analyzers.experiment_trackers.wandb"));
        c.set("analyzers.experiment_trackers", "true").unwrap(); // keeps wandb = false
        assert!(!c.bool("analyzers.experiment_trackers.wandb"));
        c.set("analyzers.experiment_trackers", "false").unwrap();
        assert!(!c.bool("analyzers.experiment_trackers"));
        let err = c
            .set("analyzers.experiment_trackers.mlflow", "true")
            .unwrap_err();
        assert!(
            err.contains("set analyzers.experiment_trackers true first"),
            "{err}"
        );
        let mut fresh = Config::default();
        fresh.set("filters.ignore_package_reads", "false").unwrap();
        assert_eq!(
            fresh.doc.to_string(),
            "[filters]\nignore_package_reads = false\n"
        );
    }
}
