//! Secrets never leave the machine: every string of every request body is
//! passed through a [`Redactor`] before `roar register` sends it (or prints
//! it with `--dry-run`).

use regex::Regex;
use serde_json::Value;

use roar_collector::config::Config;

pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not treated as secrets: redacting every
/// "1" or "on" would destroy the record and protect nothing.
const MIN_SECRET_LEN: usize = 6;

/// Token shapes and `key=value` secrets. A pattern's first capture group,
/// when it has one, is the part replaced.
const SHAPES: &[&str] = &[
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{22,}\b",
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}",
    // KEY=VALUE, also as part of a longer name (GITHUB_TOKEN=, DB_PASSWORD=).
    r"(?i)\b[A-Za-z0-9_]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)=([^\s&;,]+)",
    // A secret flag and its value inside one string (`sh -c "x --token V"`).
    r"(?i)--(?:token|password|passwd|api[-_]?key|apikey|secret|access[-_]key)[ =]+([^\s]+)",
    // Credentials in a URL: scheme://user:password@host
    r"[A-Za-z][A-Za-z0-9+.-]*://([^/\s:@]+:[^/\s@]+)@",
];

/// Command-line flags whose next argument is a secret.
const SECRET_FLAGS: &[&str] = &[
    "--token",
    "--password",
    "--passwd",
    "--api-key",
    "--apikey",
    "--api_key",
    "--secret",
    "--access-key",
];

pub struct Redactor {
    enabled: bool,
    values: Vec<String>,
    shapes: Vec<Regex>,
    allow: Vec<Regex>,
}

impl Redactor {
    /// From the project's `registration.omit.*` keys and this process's
    /// environment.
    pub fn from_config(config: &Config) -> Result<Redactor, String> {
        let mut values: Vec<String> = config
            .list("registration.omit.env_vars.names")
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .chain(config.list("registration.omit.secrets.values"))
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first: a secret containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let allow = config
            .list("registration.omit.allowlist.patterns")
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| {
                    format!("registration.omit.allowlist.patterns: {p:?} is not a regular expression: {e}")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Redactor {
            enabled: config.bool("registration.omit.enabled"),
            values,
            shapes: SHAPES
                .iter()
                .map(|p| Regex::new(p).expect("built-in patterns compile"))
                .collect(),
            allow,
        })
    }

    fn allowed(&self, text: &str) -> bool {
        self.allow.iter().any(|a| a.is_match(text))
    }

    pub fn text(&self, s: &str) -> String {
        if !self.enabled {
            return s.to_string();
        }
        let mut out = s.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) && !self.allowed(v) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        for shape in &self.shapes {
            let replaced = shape.replace_all(&out, |c: &regex::Captures| {
                let whole = c.get(0).expect("group 0 always matches").as_str();
                if self.allowed(whole) {
                    return whole.to_string();
                }
                match c.get(1) {
                    // Only the captured part, where it is in the match.
                    Some(secret) => {
                        let start = c.get(0).map_or(0, |m| m.start());
                        let (from, to) = (secret.start() - start, secret.end() - start);
                        format!("{}{REDACTED}{}", &whole[..from], &whole[to..])
                    }
                    None => REDACTED.to_string(),
                }
            });
            out = replaced.into_owned();
        }
        out
    }

    /// Redacts every string in a JSON body; in a list of strings (a command
    /// line), the argument after a secret flag too.
    pub fn json(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(items) => {
                let mut after_flag = false;
                for item in items.iter_mut() {
                    if let Value::String(s) = item {
                        let flag = SECRET_FLAGS.contains(&s.as_str());
                        *s = if after_flag && self.enabled && !self.allowed(s) {
                            REDACTED.to_string()
                        } else {
                            self.text(s)
                        };
                        after_flag = flag;
                    } else {
                        self.json(item);
                        after_flag = false;
                    }
                }
            }
            // Keys too: label documents have keys users wrote.
            Value::Object(map) => {
                let taken = std::mem::take(map);
                for (k, mut v) in taken {
                    self.json(&mut v);
                    map.insert(self.text(&k), v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor(config: &str) -> Redactor {
        Redactor::from_config(&Config::parse(config).unwrap()).unwrap()
    }

    #[test]
    fn token_shapes_flags_urls_and_values() {
        let r = redactor("[registration.omit.secrets]\nvalues = [\"hunter2-very-secret\"]\n");
        let mut body = json!({
            "command": ["train.py", "--token", "abc123def", "--lr", "0.1", "--password=pa55word!"],
            "path": "/data/hunter2-very-secret/x.csv",
            "labels": {"key": "AKIAABCDEFGHIJKLMNOP", "gh": "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
                       "db": "postgres://admin:s3cr3t@db.example.com/x", "openai": "sk-proj-abcdefghijklmnopqrstuvwx",
                       "note": "lr=0.1 keep me"},
        });
        r.json(&mut body);
        let text = body.to_string();
        for secret in [
            "abc123def",
            "pa55word!",
            "hunter2",
            "AKIAABCD",
            "ghp_0123",
            "s3cr3t",
            "admin:",
            "sk-proj-abc",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(body["command"][3], "--lr");
        assert_eq!(body["command"][4], "0.1");
        assert_eq!(body["labels"]["note"], "lr=0.1 keep me");
        assert_eq!(
            body["labels"]["db"],
            "postgres://[REDACTED]@db.example.com/x"
        );
    }

    #[test]
    fn allowlist_and_switch() {
        let r = redactor("[registration.omit.allowlist]\npatterns = [\"^AKIAEXAMPLE\"]\n");
        assert_eq!(r.text("AKIAEXAMPLE123456789"), "AKIAEXAMPLE123456789");
        assert_eq!(r.text("AKIAZZZZZZZZZZZZZZZZ"), REDACTED);
        let off = redactor("[registration.omit]\nenabled = false\n");
        assert_eq!(off.text("token=abcdefgh"), "token=abcdefgh");
        assert!(Redactor::from_config(
            &Config::parse("[registration.omit.allowlist]\npatterns = [\"(\"]\n").unwrap()
        )
        .is_err());
    }
}
