//! Experiment-tracker folders leave lineage and their runs are recorded on
//! the job. The trees are real W&B / MLflow / Neptune layouts (see
//! tests/fixtures/trackers/README.md); the traced script touches them the
//! way each SDK's Python side does. No tracker is installed, no network.

use std::path::Path;
use std::process::Command;

use roar_tests::*;
use serde_json::Value;

const WANDB_RUN: &str = "wandb/offline-run-20261123_135005-pnomyz75";
const MLFLOW_RUN: &str = "mlruns/442730832318291287/fd4d8678717b4f228046f83154c21996";
const NEPTUNE_RUN: &str =
    ".neptune/offline/run__ca565906-2366-4d4b-a4f1-ce2311428e45__20880__6lt9m82n";

/// Copies fixture trees (symlinks kept) into the project.
fn with_fixtures(p: &Project, names: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/trackers");
    for name in names {
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", root.join(name).display()))
            .arg(p.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// What each SDK's Python side does during a run, plus a real output.
fn script() -> String {
    format!(
        "import os\n\
         open('{WANDB_RUN}/logs/debug.log', 'a').write('x\\n')\n\
         open('{MLFLOW_RUN}/metrics/loss', 'a').write('1 0.5 0\\n')\n\
         open('{NEPTUNE_RUN}/last_put_version', 'w').write('37')\n\
         open('model.pkl', 'w').write('weights')\n"
    )
}

fn trackers(job: &Value) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = job["trackers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap().to_string();
            (s("tracker"), s("run_id"))
        })
        .collect();
    t.sort();
    t
}

#[test]
fn tracker_runs_are_recorded_and_their_folders_leave_lineage() {
    let p = Project::new();
    with_fixtures(
        &p,
        &["wandb_offline", "mlflow_filestore", "neptune_offline"],
    );
    p.run_ok(&["python3", "-c", &script()]);
    let job = p.json(&["show", "@1"]);
    assert_eq!(
        trackers(&job),
        [
            ("mlflow".into(), "fd4d8678717b4f228046f83154c21996".into()),
            (
                "neptune".into(),
                "ca565906-2366-4d4b-a4f1-ce2311428e45".into()
            ),
            ("wandb".into(), "pnomyz75".into()),
        ]
    );
    let by = |name: &str| {
        job["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tracker"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by("wandb")["project"], "acme/demo");
    assert_eq!(by("mlflow")["project"], "demo");
    assert_eq!(by("mlflow")["name"], "bustling-foal-60");
    assert_eq!(by("neptune")["name"], "my-named-run");
    assert_eq!(
        paths(&job, "outputs"),
        [p.file("model.pkl").to_str().unwrap()]
    );
    assert!(paths(&job, "inputs").is_empty(), "{}", job["inputs"]);
    for t in ["wandb", "mlflow", "neptune"] {
        assert!(
            job["stats"]["filtered"][t].as_u64() >= Some(1),
            "{}",
            job["stats"]
        );
    }
    let shown = text(&p.roar(&["show", "@1"]).stdout);
    assert!(
        shown.contains("tracker   wandb run pnomyz75 (acme/demo)"),
        "{shown}"
    );

    // One tracker off: its files are ordinary outputs again.
    let set = |key: &str| assert!(p.roar(&["config", "set", key, "false"]).status.success());
    set("analyzers.experiment_trackers.wandb");
    p.run_ok(&["python3", "-c", &script()]);
    let job = p.json(&["show", "@2"]);
    let kinds: Vec<String> = trackers(&job).into_iter().map(|t| t.0).collect();
    assert_eq!(kinds, ["mlflow", "neptune"]);
    let debug_log = p.file(&format!("{WANDB_RUN}/logs/debug.log"));
    assert!(paths(&job, "outputs").contains(&debug_log.to_str().unwrap().to_string()));

    // All off.
    set("analyzers.experiment_trackers");
    p.run_ok(&["python3", "-c", &script()]);
    let job = p.json(&["show", "@3"]);
    assert!(trackers(&job).is_empty());
    assert_eq!(paths(&job, "outputs").len(), 4, "{}", job["outputs"]);
}

#[test]
fn mlflow_sqlite_store_runs_of_the_job_window_only() {
    let p = Project::new();
    with_fixtures(&p, &["mlflow_sqlite"]);
    // Build mlflow.db from the real dump, outside any job.
    let build =
        "import sqlite3; sqlite3.connect('mlflow.db').executescript(open('mlflow.db.sql').read())";
    assert!(Command::new("python3")
        .args(["-c", build])
        .current_dir(p.path())
        .status()
        .unwrap()
        .success());
    // The job starts run 2 again (as MLflow would write it), now.
    let job_script = "import sqlite3, time\n\
        db = sqlite3.connect('mlflow.db')\n\
        db.execute(\"UPDATE runs SET start_time = ? WHERE name = 'named-run'\", (int(time.time() * 1000),))\n\
        db.commit()\n";
    p.run_ok(&["python3", "-c", job_script]);
    let job = p.json(&["show", "@1"]);
    assert_eq!(
        trackers(&job),
        [("mlflow".into(), "0b0c33f1365e40f496dcc5c05b7f9057".into())]
    );
    let run = &job["trackers"][0];
    assert_eq!(run["project"], "other");
    assert_eq!(run["name"], "named-run");
    assert!(paths(&job, "inputs").is_empty() && paths(&job, "outputs").is_empty());
}
