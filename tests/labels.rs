//! Labels end to end through the CLI: versions, types, nesting, retention,
//! origins, dataset auto-labels and search.

use roar_tests::*;
use serde_json::{json, Value};

fn ok(p: &Project, args: &[&str]) -> String {
    let out = p.roar(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// One clear line on stderr, exit 2, and no new version.
fn refused(p: &Project, args: &[&str], history: &[&str], needle: &str) {
    let before = p.json(history);
    let out = p.roar(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
    assert_eq!(p.json(history), before);
}

#[test]
fn versions_types_nesting_and_retention() {
    let p = Project::new();
    p.write("d.csv", "x\n");
    p.run_ok(&["sh", "-c", "cat d.csv > model.pkl"]);

    // The history example: three sets, versions 1..3, documents accumulate;
    // version 0 holds roar's own labels.
    ok(&p, &["label", "set", "job", "@1", "lr=0.001"]);
    ok(&p, &["label", "set", "job", "@1", "accuracy=0.94"]);
    ok(
        &p,
        &["label", "set", "job", "@1", "comments=overfit on val"],
    );
    let h = p.json(&["label", "history", "job", "@1"]);
    let versions: Vec<i64> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [0, 1, 2, 3]);
    assert_eq!(h[0]["origin"], "system");
    assert_eq!(
        h[0]["labels"]["roar"],
        json!({"exit_status": 0, "tracer": {"backend": "preload"}})
    );
    assert_eq!(h[1]["labels"]["lr"], json!(0.001));
    assert_eq!(h[1]["labels"].get("accuracy"), None);
    assert_eq!(h[3]["labels"]["accuracy"], json!(0.94));
    assert_eq!(h[3]["labels"]["comments"], json!("overfit on val"));
    assert_eq!(h[3]["origins"]["roar.exit_status"], "system");
    assert_eq!(h[3]["origins"]["lr"], "user");

    // Natural types, quoted strings, nested keys; `show` prints pasteable text.
    ok(
        &p,
        &[
            "label",
            "set",
            "artifact",
            "model.pkl",
            "n=3",
            "f=0.5",
            "b=true",
            "s=resnet",
            "q=\"10\"",
            "model.name=r50",
            "model.depth=50",
        ],
    );
    let doc = p.json(&["label", "show", "artifact", "model.pkl"]);
    assert_eq!(
        doc["labels"],
        json!({"n": 3, "f": 0.5, "b": true, "s": "resnet", "q": "10", "model": {"name": "r50", "depth": 50}})
    );
    assert_eq!(
        ok(&p, &["label", "show", "artifact", "model.pkl"]),
        "b=true\nf=0.5\nmodel.depth=50\nmodel.name=r50\nn=3\nq=\"10\"\ns=resnet\n"
    );
    let history = ["label", "history", "artifact", "model.pkl"];
    refused(
        &p,
        &["label", "set", "artifact", "model.pkl", "model=1"],
        &history,
        "model holds nested labels",
    );
    refused(
        &p,
        &["label", "set", "artifact", "model.pkl", "n.x=1"],
        &history,
        "n is a value",
    );
    refused(
        &p,
        &["label", "set", "artifact", "model.pkl", "bad key=1"],
        &history,
        "not a label key",
    );
    refused(
        &p,
        &["label", "rm", "artifact", "model.pkl", "nope"],
        &history,
        "no label nope",
    );
    refused(
        &p,
        &["label", "set", "thing", "x", "a=1"],
        &history,
        "a label target is",
    );

    // rm (and its alias), cp; each a new version.
    ok(&p, &["label", "rm", "artifact", "model.pkl", "model", "q"]);
    ok(&p, &["label", "unset", "artifact", "model.pkl", "s"]);
    let doc = p.json(&["label", "show", "artifact", "model.pkl"]);
    assert_eq!(doc["labels"], json!({"n": 3, "f": 0.5, "b": true}));
    assert_eq!(doc["version"], 3);
    ok(&p, &["label", "set", "dag", "current", "project=mnist"]);
    ok(&p, &["label", "cp", "artifact", "model.pkl", "job", "@1"]);
    let job = p.json(&["label", "show", "job", "@1"]);
    assert_eq!(job["labels"]["n"], json!(3));
    assert_eq!(job["labels"].get("lr"), None, "cp replaces the user labels");
    assert_eq!(
        job["labels"]["roar"]["exit_status"],
        json!(0),
        "and keeps the target's own"
    );
    let dag = p.json(&["label", "show", "dag", "current"]);
    assert_eq!(dag["labels"], json!({"project": "mnist"}));

    // Retention keeps the newest versions.
    ok(&p, &["config", "set", "labels.history_retention", "2"]);
    for i in 0..3 {
        ok(
            &p,
            &["label", "set", "dag", "current", &format!("round={i}")],
        );
    }
    let h = p.json(&["label", "history", "dag", "current"]);
    let versions: Vec<i64> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [3, 4]);
    assert_eq!(h[1]["labels"], json!({"project": "mnist", "round": 2}));
}

#[test]
fn dataset_folders_are_labelled_by_roar_but_users_win() {
    let p = Project::new();
    let script = "mkdir -p imgs && for i in 0 1 2 3 4 5 6 7 8 9; do echo $i > imgs/$i.png; done";
    p.run_ok(&["sh", "-c", script]);
    let job = p.json(&["show", "@1"]);
    let dir = p.file("imgs");
    let out = entry(&job, "outputs", &dir);
    let labels = p.json(&["label", "show", "artifact", "imgs"]);
    assert_eq!(labels["labels"]["dataset"]["modality"], "image");
    assert_eq!(labels["labels"]["dataset"]["type"], "files");
    assert_eq!(
        labels["labels"]["dataset"]["id"].as_str().unwrap(),
        &out["hash"].as_str().unwrap()[..16]
    );
    assert_eq!(labels["origins"]["dataset.modality"], "system");

    // A user's value survives roar labelling the same dataset again.
    ok(
        &p,
        &[
            "label",
            "set",
            "artifact",
            "imgs",
            "dataset.modality=satellite",
        ],
    );
    p.run_ok(&["sh", "-c", script]);
    let labels = p.json(&["label", "show", "artifact", "imgs"]);
    assert_eq!(labels["labels"]["dataset"]["modality"], "satellite");
    assert_eq!(labels["origins"]["dataset.modality"], "user");

    ok(
        &p,
        &["config", "set", "labels.auto_dataset_detect", "false"],
    );
    p.run_ok(&[
        "sh",
        "-c",
        "mkdir -p more && for i in 0 1 2 3 4 5 6 7 8 9; do echo $i > more/$i.csv; done",
    ]);
    let job = p.json(&["show", "@3"]);
    assert!(!paths(&job, "outputs").contains(&p.file("more").to_str().unwrap().to_string()));
}

#[test]
fn search_filters_sorts_and_points_at_errors() {
    let p = Project::new();
    for (i, (acc, stage)) in [(0.95, "baseline"), (0.80, "tuned"), (0.91, "baseline")]
        .iter()
        .enumerate()
    {
        p.run_ok(&["sh", "-c", &format!("echo {i} > out{i}.txt")]);
        ok(
            &p,
            &[
                "label",
                "set",
                "job",
                &format!("@{}", i + 1),
                &format!("metrics.accuracy={acc}"),
                &format!("stage={stage}"),
            ],
        );
    }
    ok(
        &p,
        &["label", "set", "artifact", "out0.txt", "stage=\"10\""],
    );
    let steps = |args: &[&str]| -> Vec<Value> {
        let mut a = vec!["search"];
        a.extend_from_slice(args);
        p.json(&a)
            .as_array()
            .unwrap()
            .iter()
            .map(|h| json!([h["kind"], h["labels"]["metrics"]["accuracy"]]))
            .collect()
    };
    assert_eq!(
        steps(&["metrics.accuracy>0.9 AND stage=baseline"]),
        [json!(["job", 0.95]), json!(["job", 0.91])]
    );
    assert_eq!(
        steps(&["NOT stage=baseline", "--kind", "job"]),
        [json!(["job", 0.8])]
    );
    assert_eq!(
        steps(&["stage=10"]),
        Vec::<Value>::new(),
        "a number never equals a string"
    );
    assert_eq!(steps(&["stage=\"10\""]).len(), 1);
    assert_eq!(
        steps(&[
            "has:metrics",
            "--sort",
            "metrics.accuracy",
            "--desc",
            "--top",
            "2"
        ]),
        [json!(["job", 0.95]), json!(["job", 0.91])]
    );
    let human = ok(&p, &["search", "stage=tuned"]);
    assert!(human.starts_with("job @2 "), "{human}");
    assert!(
        human.contains("metrics.accuracy=0.8") && human.contains("lineage: roar show "),
        "{human}"
    );

    let out = p.roar(&["search", "metrics.accuracy>0.9 AND"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("column 25") && err.contains("expected a clause"),
        "{err}"
    );
}
