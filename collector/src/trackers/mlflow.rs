//! MLflow: the file store keeps a run in `mlruns/EXPERIMENT_ID/RUN_ID/`
//! (`meta.yaml` with `run_name`; the experiment's own `meta.yaml` has its
//! `name`), artifacts under the run or in `mlartifacts/EXPERIMENT_ID/RUN_ID/`.
//! MLflow 3 defaults to a SQLite store, `mlflow.db`, read here read-only:
//! the runs that started while the job ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::TrackerRun;

/// Allowance for clocks: the job's times come from roar, a run's from MLflow.
const SLACK_MS: i64 = 2_000;

fn is_run_id(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A run folder named by a path under `mlruns/` or `mlartifacts/`:
/// (store folder, experiment id, run id).
fn locate(path: &Path) -> Option<(PathBuf, String, String)> {
    let parts: Vec<&std::ffi::OsStr> = path.iter().collect();
    let at = parts
        .iter()
        .rposition(|c| *c == "mlruns" || *c == "mlartifacts")?;
    let experiment = parts.get(at + 1)?.to_str()?;
    let run = parts.get(at + 2)?.to_str()?;
    if !is_run_id(run) {
        return None;
    }
    let store: PathBuf = parts[..=at].iter().collect();
    Some((store, experiment.to_string(), run.to_string()))
}

/// `key: value` of a flat YAML file (MLflow's meta.yaml), quotes removed.
fn yaml_value(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?.trim();
        let value = value.trim_matches(|c| c == '\'' || c == '"');
        (!value.is_empty() && value != "null").then(|| value.to_string())
    })
}

/// Runs the job logged: those whose folders it touched (file store, or
/// artifacts of a SQLite store), and the runs of each `mlflow.db` it touched
/// that started or ended between `started_at` and `ended_at` (Unix seconds):
/// the job's write to a shared database does not say which run was its own.
pub fn runs(touched: &[&Path], started_at: f64, ended_at: f64) -> Vec<TrackerRun> {
    let dbs: Vec<&Path> = touched
        .iter()
        .copied()
        .filter(|p| p.file_name().is_some_and(|n| n == "mlflow.db"))
        .collect();
    let folders: BTreeMap<String, (PathBuf, String)> = touched
        .iter()
        .filter_map(|p| locate(p))
        .map(|(store, experiment, run)| (run, (store, experiment)))
        .collect();
    let window = (
        (started_at * 1000.0) as i64 - SLACK_MS,
        (ended_at * 1000.0) as i64 + SLACK_MS,
    );
    let mut found: BTreeMap<String, TrackerRun> = BTreeMap::new();
    for db in dbs {
        let ids: Vec<&str> = folders.keys().map(String::as_str).collect();
        for run in db_runs(db, window, &ids) {
            found.insert(run.run_id.clone(), run);
        }
    }
    for (run_id, (store, experiment)) in folders {
        if found.contains_key(&run_id) {
            continue;
        }
        // Artifacts may sit in mlartifacts/; the metadata is in mlruns/.
        let meta_root = store.with_file_name("mlruns");
        let run_dir = meta_root.join(&experiment).join(&run_id);
        found.insert(
            run_id.clone(),
            TrackerRun {
                tracker: "mlflow".into(),
                project: yaml_value(&meta_root.join(&experiment).join("meta.yaml"), "name"),
                name: yaml_value(&run_dir.join("meta.yaml"), "run_name"),
                url: None,
                path: store.join(&experiment).join(&run_id).display().to_string(),
                run_id,
            },
        );
    }
    found.into_values().collect()
}

/// Runs of the database `db` in the time window (ms), or named in `ids`.
/// Read-only: no journal, no lock; an unreadable database yields nothing.
fn db_runs(db: &Path, (from, to): (i64, i64), ids: &[&str]) -> Vec<TrackerRun> {
    let query = || -> rusqlite::Result<Vec<TrackerRun>> {
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        let ids = serde_json::to_string(ids).expect("strings serialise");
        let mut stmt = conn.prepare(
            "SELECT r.run_uuid, r.name, e.name FROM runs r
             LEFT JOIN experiments e ON e.experiment_id = r.experiment_id
             WHERE r.start_time BETWEEN ?1 AND ?2 OR r.end_time BETWEEN ?1 AND ?2
                OR r.run_uuid IN (SELECT value FROM json_each(?3))
             ORDER BY r.start_time",
        )?;
        let rows = stmt.query_map(rusqlite::params![from, to, ids], |row| {
            Ok(TrackerRun {
                tracker: "mlflow".into(),
                run_id: row.get(0)?,
                name: row.get(1)?,
                project: row.get(2)?,
                url: None,
                path: db.display().to_string(),
            })
        })?;
        rows.collect()
    };
    query().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trackers::fixture;

    #[test]
    fn file_store_runs_are_named_from_meta_yaml() {
        let run =
            fixture("mlflow_filestore/mlruns/442730832318291287/fd4d8678717b4f228046f83154c21996");
        let got = runs(
            &[&run.join("metrics/loss"), &run.join("params/lr")],
            0.0,
            0.0,
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].run_id, "fd4d8678717b4f228046f83154c21996");
        assert_eq!(got[0].project.as_deref(), Some("demo"));
        assert_eq!(got[0].name.as_deref(), Some("bustling-foal-60"));
        // The experiment's own meta.yaml is not a run.
        let exp = fixture("mlflow_filestore/mlruns/442730832318291287/meta.yaml");
        assert!(runs(&[&exp], 0.0, 0.0).is_empty());
    }

    #[test]
    fn sqlite_store_runs_started_during_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mlflow.db");
        let sql = std::fs::read_to_string(fixture("mlflow_sqlite/mlflow.db.sql")).unwrap();
        Connection::open(&db).unwrap().execute_batch(&sql).unwrap();
        // Run 1 started at 1795442074.792, run 2 at 1795442276.375.
        let got = runs(&[&db], 1795442074.0, 1795442080.0);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].run_id, "6d2382bce334424c88e6c832d459f9d9");
        assert_eq!(got[0].project.as_deref(), Some("demo"));
        assert_eq!(got[0].name.as_deref(), Some("zealous-roo-798"));
        let both = runs(&[&db], 1795442000.0, 1795442300.0);
        assert_eq!(both.len(), 2);
        assert!(runs(&[&db], 0.0, 1.0).is_empty());
        // A run whose artifacts the job wrote counts whatever its times.
        let artifact = dir
            .path()
            .join("mlruns/2/0b0c33f1365e40f496dcc5c05b7f9057/artifacts/m.pkl");
        let resumed = runs(&[&db, &artifact], 0.0, 1.0);
        assert_eq!(resumed.len(), 1, "{resumed:?}");
        assert_eq!(resumed[0].name.as_deref(), Some("named-run"));
        assert_eq!(resumed[0].project.as_deref(), Some("other"));
    }
}
