//! The per-user telemetry state in stats.json: install id, first-seen time,
//! event sequence, the last version that ran, and the allowlisted counters.
//!
//! It is read strictly: counters outside the allowlist and ids or
//! timestamps of the wrong shape are dropped, so whatever is in the file,
//! only allowlisted names and well-formed values reach a payload. A file
//! that cannot be used at all is a new install.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Map, Value};

use super::clock;
use super::payload::{counter_key, tracer_key, STATS_SCHEMA_VERSION};

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub install_id: String,
    pub first_seen: String,
    /// The sequence number of the last event queued.
    pub sequence: u64,
    /// The roar version that last ran, to notice upgrades. Never uploaded
    /// as such (the payload's `version` is the running build's).
    pub last_version: Option<String>,
    pub counters_as_of: String,
    pub subcommand_counts: BTreeMap<&'static str, u64>,
    pub tracer_selections: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// The state of an install that has never counted anything.
    pub fn fresh() -> Stats {
        let now = clock::now();
        Stats {
            install_id: clock::uuid_v4(),
            first_seen: now.clone(),
            sequence: 0,
            last_version: None,
            counters_as_of: now,
            subcommand_counts: BTreeMap::new(),
            tracer_selections: BTreeMap::new(),
        }
    }

    /// Adds one to an allowlisted counter; other names are ignored.
    pub fn bump(&mut self, name: &str) {
        if let Some(key) = counter_key(name) {
            *self.subcommand_counts.entry(key).or_insert(0) += 1;
        }
    }

    pub fn bump_tracer(&mut self, name: &str) {
        if let Some(key) = tracer_key(name) {
            *self.tracer_selections.entry(key).or_insert(0) += 1;
        }
    }

    pub fn count(&self, name: &str) -> u64 {
        self.subcommand_counts.get(name).copied().unwrap_or(0)
    }

    /// Parses stats.json text; `None` when it is not usable as a whole.
    pub fn parse(text: &str) -> Option<Stats> {
        let v: Value = serde_json::from_str(text).ok()?;
        let install_id = v["install_id"].as_str().filter(|s| clock::is_uuid(s))?;
        let first_seen = v["first_seen"]
            .as_str()
            .filter(|s| clock::is_timestamp(s))?;
        let counters_as_of = v["counters_as_of"]
            .as_str()
            .filter(|s| clock::is_timestamp(s))
            .unwrap_or(first_seen);
        Some(Stats {
            install_id: install_id.to_string(),
            first_seen: first_seen.to_string(),
            sequence: v["sequence"].as_u64().unwrap_or(0),
            last_version: v["last_version"].as_str().map(str::to_string),
            counters_as_of: counters_as_of.to_string(),
            subcommand_counts: counters(&v["subcommand_counts"], counter_key),
            tracer_selections: counters(&v["tracer_selections"], tracer_key),
        })
    }

    pub fn to_json(&self) -> String {
        let v = json!({
            "stats_schema_version": STATS_SCHEMA_VERSION,
            "install_id": self.install_id,
            "first_seen": self.first_seen,
            "sequence": self.sequence,
            "last_version": self.last_version,
            "counters_as_of": self.counters_as_of,
            "subcommand_counts": self.subcommand_counts,
            "tracer_selections": self.tracer_selections,
        });
        let mut text = serde_json::to_string_pretty(&v).expect("stats serialise");
        text.push('\n');
        text
    }

    /// The stats in `path`; `None` when missing or unusable.
    pub fn load(path: &Path) -> Option<Stats> {
        Stats::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Writes atomically (temporary file renamed over), so a reader never
    /// sees half a file.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path)
    }
}

fn counters(v: &Value, key: fn(&str) -> Option<&'static str>) -> BTreeMap<&'static str, u64> {
    v.as_object()
        .map(Map::iter)
        .into_iter()
        .flatten()
        .filter_map(|(k, n)| Some((key(k)?, n.as_u64()?)))
        .collect()
}

/// An exclusive flock, released when dropped.
pub struct Lock {
    _held: Flock<File>,
}

/// Takes the lock at `path`, creating the file. `wait`: block until it is
/// free (counter updates take milliseconds); otherwise `None` when another
/// process holds it.
pub fn lock(path: &Path, wait: bool) -> io::Result<Option<Lock>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let how = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    match Flock::lock(file, how) {
        Ok(held) => Ok(Some(Lock { _held: held })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(io::Error::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strict_reading() {
        let mut s = Stats::fresh();
        s.bump("init");
        s.bump("init");
        s.bump("label"); // not allowlisted: not counted
        s.bump_tracer("preload");
        s.last_version = Some("0.1.0".into());
        s.sequence = 4;
        let back = Stats::parse(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.count("init"), 2);
        assert_eq!(back.count("label"), 0);

        let mut v: Value = serde_json::from_str(&s.to_json()).unwrap();
        v["subcommand_counts"]["/home/alice/train.py"] = 3.into();
        v["tracer_selections"]["secret"] = 1.into();
        v["subcommand_counts"]["run"] = "many".into();
        let back = Stats::parse(&v.to_string()).unwrap();
        assert_eq!(back.subcommand_counts.len(), 1);
        assert_eq!(back.tracer_selections.len(), 1);

        v["install_id"] = "alice@box".into();
        assert!(Stats::parse(&v.to_string()).is_none());
        assert!(Stats::parse("{").is_none());
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = std::env::temp_dir().join(format!("roar-tlock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".lock");
        let held = lock(&path, false).unwrap();
        assert!(held.is_some());
        assert!(lock(&path, false).unwrap().is_none());
        drop(held);
        assert!(lock(&path, false).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
