//! Experiment trackers (W&B, MLflow, Neptune): their folders are kept out
//! of lineage, and the runs a job logged are recorded on the job instead.
//! Only directory structure and run references are read: no metrics, no
//! config dumps.

mod mlflow;
mod neptune;
mod wandb;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// A tracker run the job logged to, as recorded on the job.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrackerRun {
    /// `wandb`, `mlflow` or `neptune`.
    pub tracker: String,
    pub run_id: String,
    /// W&B `entity/project`, MLflow experiment name, Neptune project.
    pub project: Option<String>,
    /// The run's display name, when it has one.
    pub name: Option<String>,
    /// Where the run can be seen, when that is known from disk.
    pub url: Option<String>,
    /// The run's folder, or the database holding it.
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tracker {
    Wandb,
    Mlflow,
    Neptune,
}

impl Tracker {
    pub const ALL: [Tracker; 3] = [Tracker::Wandb, Tracker::Mlflow, Tracker::Neptune];

    /// Its name in config keys, filter counts and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Tracker::Wandb => "wandb",
            Tracker::Mlflow => "mlflow",
            Tracker::Neptune => "neptune",
        }
    }

    pub fn named(name: &str) -> Option<Tracker> {
        Tracker::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The trackers the configuration leaves on.
    pub fn enabled(config: &Config) -> Vec<Tracker> {
        if !config.bool("analyzers.experiment_trackers") {
            return vec![];
        }
        Tracker::ALL
            .into_iter()
            .filter(|t| config.bool(&format!("analyzers.experiment_trackers.{}", t.name())))
            .collect()
    }
}

/// The runs a job logged, from the tracker paths it touched (grouped by
/// tracker) and its start and end (Unix seconds).
pub fn runs(
    touched: &BTreeMap<Tracker, Vec<&Path>>,
    started_at: f64,
    ended_at: f64,
) -> Vec<TrackerRun> {
    touched
        .iter()
        .flat_map(|(tracker, paths)| match tracker {
            Tracker::Wandb => wandb::runs(paths),
            Tracker::Mlflow => mlflow::runs(paths, started_at, ended_at),
            Tracker::Neptune => neptune::runs(paths),
        })
        .collect()
}

/// The tracker whose files `path` belongs to: anything under `wandb/` (or
/// `.wandb/`), `mlruns/`, `mlartifacts/` or `.neptune/`, a `*.wandb` run log, or an
/// MLflow SQLite store (`mlflow.db` and its journal files).
pub fn tracker_of(path: &[u8]) -> Option<Tracker> {
    let p = Path::new(OsStr::from_bytes(path));
    let name = p.file_name()?.as_bytes();
    if name.ends_with(b".wandb") {
        return Some(Tracker::Wandb);
    }
    if name
        .strip_prefix(b"mlflow.db")
        .is_some_and(|rest| rest.is_empty() || [&b"-journal"[..], b"-wal", b"-shm"].contains(&rest))
    {
        return Some(Tracker::Mlflow);
    }
    p.parent()?
        .components()
        .find_map(|c| match c.as_os_str().as_bytes() {
            b"wandb" | b".wandb" => Some(Tracker::Wandb),
            b"mlruns" | b"mlartifacts" => Some(Tracker::Mlflow),
            b".neptune" => Some(Tracker::Neptune),
            _ => None,
        })
}

/// A tree under tests/fixtures/trackers (real layouts, see its README).
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/trackers")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_paths_are_recognised() {
        let cases: [(&str, Option<Tracker>); 9] = [
            (
                "/p/wandb/run-20261123_101010-abc123/files/output.log",
                Some(Tracker::Wandb),
            ),
            ("/p/wandb/latest-run", Some(Tracker::Wandb)),
            ("/p/x/run-abc123.wandb", Some(Tracker::Wandb)),
            ("/p/mlruns/0/9f1c/meta.yaml", Some(Tracker::Mlflow)),
            (
                "/p/mlartifacts/1/9f1c/artifacts/model.pkl",
                Some(Tracker::Mlflow),
            ),
            ("/p/mlflow.db-journal", Some(Tracker::Mlflow)),
            (
                "/p/.neptune/async/run__x/data-1.log",
                Some(Tracker::Neptune),
            ),
            ("/p/wandb", None), // a file named like the folder
            ("/p/model.pkl", None),
        ];
        for (path, want) in cases {
            assert_eq!(tracker_of(path.as_bytes()), want, "{path}");
        }
    }
}
