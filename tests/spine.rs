//! The spine end to end: real processes traced by the real shim, recorded by
//! the real collector into a real SQLite file, queried through the CLI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use roar_tests::*;
use serde_json::Value;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pipeline")
}

#[test]
fn example_pipeline_is_linked_prepare_train_evaluate() {
    let p = Project::new();
    for step in ["prepare.py", "train.py", "evaluate.py"] {
        std::fs::copy(example_dir().join(step), p.file(step)).unwrap();
    }
    for step in ["prepare.py", "train.py", "evaluate.py"] {
        p.run_ok(&["python3", step]);
    }
    let csv = p.file("data.csv");
    let model = p.file("model.pkl");
    let metrics = p.file("metrics.json");

    let dag = p.json(&["dag"]);
    let edges: BTreeSet<(i64, i64, String)> = dag["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_i64().unwrap(),
                e["to"].as_i64().unwrap(),
                e["artifact"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        edges.contains(&(1, 2, b3(&csv))),
        "no prepare→train edge via the CSV: {edges:?}"
    );
    assert!(
        edges.contains(&(2, 3, b3(&model))),
        "no train→evaluate edge via the model: {edges:?}"
    );
    assert_eq!(dag["jobs"].as_array().unwrap().len(), 3);

    let eval = p.json(&["show", "@3"]);
    assert_eq!(eval["step"], 3);
    assert_eq!(
        eval["command"],
        serde_json::json!(["python3", "evaluate.py"])
    );
    assert_eq!(eval["exit_status"], 0);
    assert_eq!(eval["cwd"], p.path().to_str().unwrap());
    let m = entry(&eval, "inputs", &model);
    assert_eq!(m["hash"], b3(&model));
    assert_eq!(m["size"], std::fs::metadata(&model).unwrap().len());
    assert_eq!(entry(&eval, "outputs", &metrics)["hash"], b3(&metrics));
    assert_eq!(paths(&eval, "outputs"), vec![metrics.to_str().unwrap()]);
    // The interpreter's own files are filtered; the script itself is an input.
    let inputs = paths(&eval, "inputs");
    assert!(
        inputs
            .iter()
            .all(|i| i.starts_with(p.path().to_str().unwrap())),
        "{inputs:?}"
    );
    entry(&eval, "inputs", &p.file("evaluate.py"));
    let procs = eval["processes"].as_array().unwrap();
    assert!(
        procs.iter().any(
            |pr| pr["argv"] == serde_json::json!(["python3", "evaluate.py"])
                || pr["argv"][1] == "evaluate.py"
        ),
        "{procs:?}"
    );

    // The artifact view: who wrote the model, who read it.
    let art = p.json(&["show", "model.pkl"]);
    assert_eq!(art["hash"], b3(&model));
    assert_eq!(art["written_by"][0]["step"], 2);
    assert_eq!(art["read_by"][0]["step"], 3);

    let log = p.json(&["log"]);
    let steps: Vec<i64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, vec![1, 2, 3]);
    assert!(log[0]["duration_s"].as_f64().unwrap() >= 0.0);

    // Human views name the steps and files.
    let tree = text(&p.roar(&["dag"]).stdout);
    assert!(
        tree.contains("@1") && tree.contains("data.csv → @2") && tree.contains("model.pkl → @3"),
        "{tree}"
    );
    // Recorded jobs leave no spool behind.
    assert_eq!(std::fs::read_dir(p.file(".roar/spool")).unwrap().count(), 0);
    let uid = eval["uid"].as_str().unwrap();
    assert_eq!(p.json(&["show", &uid[..8]])["step"], 3);
}

/// One file-system syscall seen by strace.
#[derive(Debug)]
enum Seen {
    Open {
        path: String,
        write: bool,
        read: bool,
        trunc: bool,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
}

fn quoted(s: &str) -> Vec<String> {
    s.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Parses `strace -f` output (pid-prefixed, unfinished/resumed lines joined).
fn parse_strace(trace: &str) -> Vec<Seen> {
    let mut seen = Vec::new();
    for (_pid, call) in strace_calls(trace) {
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        let Some((_, ret)) = call.rsplit_once(" = ") else {
            continue;
        };
        if ret.trim().starts_with('-') {
            continue;
        }
        let q = quoted(args);
        match name {
            "open" | "openat" | "creat" if !q.is_empty() => {
                let write = call.contains("O_WRONLY") || call.contains("O_RDWR") || name == "creat";
                if call.contains("O_DIRECTORY") {
                    continue;
                }
                seen.push(Seen::Open {
                    path: q[0].clone(),
                    write,
                    read: !call.contains("O_WRONLY") && name != "creat",
                    trunc: call.contains("O_TRUNC"),
                });
            }
            "rename" | "renameat" | "renameat2" if q.len() == 2 => seen.push(Seen::Rename {
                from: q[0].clone(),
                to: q[1].clone(),
            }),
            "unlink" | "unlinkat" if !q.is_empty() => {
                seen.push(Seen::Unlink { path: q[0].clone() })
            }
            _ => {}
        }
    }
    seen
}

/// Inputs, outputs and transients from strace's view, for files in `dir`.
fn strace_sets(
    dir: &Path,
    seen: &[Seen],
) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let rel = |p: &str| -> Option<String> {
        let abs = dir.join(p);
        abs.strip_prefix(dir)
            .ok()
            .map(|r| r.to_string_lossy().into_owned())
            .filter(|r| !r.is_empty() && !r.starts_with(".roar"))
    };
    let (mut inputs, mut written, mut transient) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for s in seen {
        match s {
            Seen::Open {
                path,
                write,
                read,
                trunc,
            } => {
                let Some(p) = rel(path) else { continue };
                if !written.contains(&p) && (!write || (*read && !trunc)) {
                    inputs.insert(p.clone());
                }
                if *write {
                    transient.remove(&p);
                    written.insert(p);
                }
            }
            Seen::Rename { from, to } => {
                if let (Some(f), Some(t)) = (rel(from), rel(to)) {
                    written.remove(&f);
                    transient.remove(&t);
                    written.insert(t);
                }
            }
            Seen::Unlink { path } => {
                if let Some(p) = rel(path) {
                    if written.remove(&p) {
                        transient.insert(p);
                    }
                }
            }
        }
    }
    (inputs, written, transient)
}

fn rel_set(job: &Value, key: &str, dir: &Path) -> BTreeSet<String> {
    paths(job, key)
        .iter()
        .map(|p| {
            Path::new(p)
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn shell_script_matches_strace() {
    assert!(have("strace"), "strace is required (.ci/run installs it)");
    let script = "cat a > b\ncp b c\nmv c d\nrm b\n";
    // Ground truth: the same script in its own folder under strace -f.
    let truth = tempfile::tempdir().unwrap();
    std::fs::write(truth.path().join("script.sh"), script).unwrap();
    std::fs::write(truth.path().join("a"), "alpha\n").unwrap();
    let trace = truth.path().join("trace.txt");
    let st = clean(&mut Command::new("strace"))
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=open,openat,creat,rename,renameat,renameat2,unlink,unlinkat",
            "--",
            "sh",
            "script.sh",
        ])
        .current_dir(truth.path())
        .status()
        .unwrap();
    assert!(st.success());
    let seen = parse_strace(&std::fs::read_to_string(&trace).unwrap());
    let (s_in, s_out, s_transient) = strace_sets(truth.path(), &seen);
    assert!(
        s_in.contains("a") && s_out.contains("d"),
        "strace parse went wrong: {seen:?}"
    );

    let p = Project::new();
    p.write("script.sh", script);
    p.write("a", "alpha\n");
    p.run_ok(&["sh", "script.sh"]);
    let job = p.json(&["show", "@1"]);
    assert_eq!(rel_set(&job, "inputs", p.path()), s_in);
    assert_eq!(rel_set(&job, "outputs", p.path()), s_out);
    assert_eq!(s_out, BTreeSet::from(["d".to_string()]));
    assert_eq!(job["stats"]["transient"], s_transient.len() as u64);
    assert_eq!(
        entry(&job, "outputs", &p.file("d"))["hash"],
        b3(&p.file("a"))
    );
    // Every process of the script was seen: sh, cat, cp, mv, rm.
    let exes: BTreeSet<String> = job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|pr| {
            pr["argv"][0]
                .as_str()
                .map(|a| a.rsplit('/').next().unwrap().to_string())
        })
        .collect();
    for prog in ["sh", "cat", "cp", "mv", "rm"] {
        assert!(exes.contains(prog), "{prog} missing from {exes:?}");
    }
    let root_pid = job["processes"][0]["pid"].clone();
    for pr in job["processes"].as_array().unwrap().iter().skip(1) {
        assert_eq!(pr["ppid"], root_pid, "{pr}");
    }
}

#[test]
fn exit_status_and_signals_are_passed_through() {
    let p = Project::new();
    let out = p.roar(&["run", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(p.json(&["show", "@1"])["exit_status"], 3);

    let out = p.roar(&["run", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(143));
    assert_eq!(p.json(&["show", "@2"])["exit_status"], 143);

    // Signals sent to roar reach the command; roar outlives them, records
    // the job and exits as the command did.
    for (step, (signal, status)) in [("TERM", 143), ("INT", 130), ("HUP", 129)]
        .iter()
        .enumerate()
    {
        let mut child = p.command(&["run", "-q", "sleep", "30"]).spawn().unwrap();
        let started = Instant::now();
        // Wait until the command runs under roar (its collector is up first).
        wait_for_collector(&p.file(".roar/roar.db"));
        std::thread::sleep(Duration::from_millis(200));
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(*status), "SIG{signal}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "SIG{signal} did not reach sleep"
        );
        let job = p.json(&["show", &format!("@{}", step + 3)]);
        assert_eq!(job["exit_status"], *status);
        assert_eq!(job["command"], serde_json::json!(["sleep", "30"]));
    }
}

#[test]
fn stdio_passes_through_and_summary_respects_quiet() {
    let p = Project::new();
    let mut child = p
        .command(&["run", "sh", "-c", "read x; echo got:$x; echo err >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "got:hello\n");
    let err = text(&out.stderr);
    assert!(err.starts_with("err\n"), "{err}");
    assert!(err.contains("roar: @1 recorded"), "{err}");

    p.write("in.txt", "x");
    let out = p.roar(&["run", "-q", "cat", "in.txt"]);
    assert_eq!(text(&out.stdout), "x");
    assert_eq!(text(&out.stderr), "");
    let out = p.roar(&["run", "-v", "cat", "in.txt"]);
    assert!(
        text(&out.stderr).contains("in.txt"),
        "{}",
        text(&out.stderr)
    );
}

/// The pid of the collector recording into `db`, once it runs.
fn wait_for_collector(db: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = collector_pid(db) {
            return pid;
        }
        assert!(Instant::now() < deadline, "collector never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn collector_pid(db: &Path) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("roar-collector") && cmdline.contains(db.to_str().unwrap()) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn killed_collector_does_not_disturb_the_command() {
    let p = Project::new();
    p.write("a", "alpha\n");
    let script = "for i in 1 2 3 4 5 6; do cat a; sleep 0.2; done; echo end; exit 5";
    let bare = clean(&mut Command::new("sh"))
        .args(["-c", script])
        .current_dir(p.path())
        .output()
        .unwrap();

    let child = p
        .command(&["run", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let db = p.file(".roar/roar.db");
    let pid = wait_for_collector(&db);
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, bare.stdout);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(bare.status.code(), Some(5));
    let err = text(&out.stderr);
    assert!(!err.contains("Broken pipe"), "{err}");
    // What the collector had received before it died is recovered from its
    // spool, marked incomplete, with the command's real exit status.
    assert!(err.contains("incomplete job"), "{err}");
    let log = p.json(&["log"]);
    assert_eq!(log[0]["incomplete"], true, "{log}");
    assert_eq!(log[0]["exit_status"], 5);
    let job = p.json(&["show", "@1"]);
    entry(&job, "inputs", &p.file("a"));
    assert!(
        !p.file(".roar/spool").read_dir().unwrap().any(|_| true),
        "spool left behind"
    );
}

#[test]
fn env_i_in_the_middle_of_a_chain_is_still_traced() {
    let p = Project::new();
    p.write("a", "alpha\n");
    p.run_ok(&["sh", "-c", "env -i /bin/sh -c 'cat a > b'"]);
    let job = p.json(&["show", "@1"]);
    assert_eq!(
        rel_set(&job, "inputs", p.path()),
        BTreeSet::from(["a".to_string()])
    );
    assert_eq!(
        rel_set(&job, "outputs", p.path()),
        BTreeSet::from(["b".to_string()])
    );
    let argv0: Vec<String> = job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pr| pr["argv"][0].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        argv0.iter().any(|a| a.ends_with("cat")),
        "cat after env -i not traced: {argv0:?}"
    );
}

#[test]
fn outside_a_project_says_to_init() {
    let p = Project::bare();
    for args in [
        &["run", "true"][..],
        &["log"],
        &["dag", "--json"],
        &["show", "@1"],
    ] {
        let out = p.roar(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("roar init"), "{err}");
    }
}

#[test]
fn init_in_a_git_repo_ignores_roar_dir_and_jobs_record_git_state() {
    if !have("git") {
        return;
    }
    let p = Project::bare();
    let git = |args: &[&str]| {
        assert!(clean(&mut Command::new("git"))
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(p.path())
            .output()
            .unwrap()
            .status
            .success());
    };
    git(&["init", "-q", "-b", "main"]);
    p.write("tracked.txt", "v1");
    git(&["add", "tracked.txt"]);
    git(&["commit", "-q", "-m", "one"]);
    assert!(p.roar(&["init"]).status.success());
    let ignore = std::fs::read_to_string(p.file(".gitignore")).unwrap();
    assert_eq!(ignore.lines().filter(|l| *l == ".roar/").count(), 1);
    assert!(p.file(".roar/config.toml").is_file() && p.file(".roar/roar.db").is_file());
    // Again: nothing added twice.
    assert!(p.roar(&["init"]).status.success());
    assert_eq!(
        std::fs::read_to_string(p.file(".gitignore")).unwrap(),
        ignore
    );

    p.write("tracked.txt", "v2");
    p.run_ok(&["cat", "tracked.txt"]);
    let job = p.json(&["show", "@1"]);
    assert_eq!(job["git"]["branch"], "main");
    assert_eq!(job["git"]["dirty"], true);
    assert_eq!(job["git"]["commit"].as_str().unwrap().len(), 40);
}

#[test]
fn missing_shim_is_one_clear_error() {
    let p = Project::new();
    let lonely = tempfile::tempdir().unwrap();
    let roar = lonely.path().join("roar");
    std::fs::copy(roar_exe(), &roar).unwrap();
    let out = clean(&mut Command::new(&roar))
        .args(["run", "true"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("libroar.so") && err.contains("ROAR_SHIM"),
        "{err}"
    );
    // ROAR_SHIM is the last place looked.
    let out = clean(&mut Command::new(&roar))
        .args(["run", "-q", "true"])
        .env("ROAR_SHIM", bin_dir().join("libroar.so"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(p.json(&["log"]).as_array().unwrap().len(), 1);
}

#[test]
fn unknown_command_and_bad_targets_fail_cleanly() {
    let p = Project::new();
    let out = p.roar(&["run", "./does-not-exist"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(text(&out.stderr).lines().count(), 1);
    for bad in ["@9", "nosuchfile.txt", "zzzz"] {
        let out = p.roar(&["show", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{bad}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"));
    }
}

#[test]
fn concurrent_runs_in_one_project_all_land() {
    let p = Project::new();
    let children: Vec<_> = (0..4)
        .map(|i| {
            p.command(&["run", "-q", "sh", "-c", &format!("echo {i} > out{i}.txt")])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let log = p.json(&["log"]);
    let mut steps: Vec<i64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["step"].as_i64().unwrap())
        .collect();
    steps.sort();
    assert_eq!(steps, vec![1, 2, 3, 4]);
    for step in 1..=4 {
        let job = p.json(&["show", &format!("@{step}")]);
        let outputs = paths(&job, "outputs");
        assert_eq!(outputs.len(), 1, "{job}");
        // Each job holds its own output, not a sibling's.
        let script = job["command"][2].as_str().unwrap();
        assert!(script.ends_with(&format!("> {}", outputs[0].rsplit('/').next().unwrap())));
    }
}

/// roar run answers before the collector copies its write-ahead log into
/// the database file; once the collector is gone, the file alone holds the
/// job (it can be copied on its own).
#[test]
fn the_database_file_alone_holds_the_job_once_the_collector_left() {
    let p = Project::new();
    p.run_ok(&["sh", "-c", "echo x > out.txt"]);
    let db = p.file(".roar/roar.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    while collector_pid(&db).is_some() {
        assert!(Instant::now() < deadline, "the collector never left");
        std::thread::sleep(Duration::from_millis(10));
    }
    let copy = Project::new();
    std::fs::copy(&db, copy.file(".roar/roar.db")).unwrap();
    let job = copy.json(&["show", "@1"]);
    assert_eq!(
        paths(&job, "outputs"),
        [p.file("out.txt").to_str().unwrap()]
    );
}

#[test]
fn corrupt_database_is_one_clear_error() {
    let p = Project::new();
    p.write(
        ".roar/roar.db",
        "this is not an SQLite database, not at all",
    );
    for args in [&["log"][..], &["run", "true"]] {
        let out = p.roar(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("not a database") && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[test]
fn config_is_validated_and_filters_follow_it() {
    let p = Project::new();
    let outside = tempfile::tempdir().unwrap();
    let scratch = outside.path().join("scratch.txt");
    std::fs::write(&scratch, "tmp data").unwrap();
    p.write("in.txt", "project data");
    let script = format!("cat in.txt {} > out.txt", scratch.display());

    // Default: /tmp outside the project is dropped and counted, the project
    // (itself under /tmp here) is kept.
    p.run_ok(&["sh", "-c", &script]);
    let job = p.json(&["show", "@1"]);
    assert_eq!(
        paths(&job, "inputs"),
        vec![p.file("in.txt").to_str().unwrap()]
    );
    assert_eq!(job["stats"]["filtered"]["tmp"], 1, "{}", job["stats"]);

    let config = p.file(".roar/config.toml");
    let before = std::fs::read_to_string(&config).unwrap();
    for bad in [
        &["config", "set", "filters.nope", "true"][..],
        &["config", "set", "filters.ignore_tmp_files", "maybe"],
        &["config", "get", "nope"],
    ] {
        let out = p.roar(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    }
    let get = |key: &str| text(&p.roar(&["config", "get", key]).stdout);
    assert_eq!(get("filters.ignore_tmp_files"), "true\n");
    assert!(p
        .roar(&["config", "set", "filters.ignore_tmp_files", "false"])
        .status
        .success());
    assert_eq!(get("filters.ignore_tmp_files"), "false\n");
    let after = std::fs::read_to_string(&config).unwrap();
    assert!(after.starts_with(&before), "comments kept: {after}");
    let list = p.json(&["config", "list"]);
    let tmp = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "filters.ignore_tmp_files")
        .unwrap();
    assert_eq!(
        (tmp["value"].as_str(), tmp["default"].as_bool()),
        (Some("false"), Some(false))
    );

    p.run_ok(&["sh", "-c", &script]);
    let job = p.json(&["show", "@2"]);
    entry(&job, "inputs", &scratch);

    // A hand-broken file stops roar run before the command, with one line.
    std::fs::write(&config, "[filters]\nignore_tmp_files = 7\n").unwrap();
    let out = p.roar(&["run", "touch", "never.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("must be a boolean"),
        "{}",
        text(&out.stderr)
    );
    assert!(!p.file("never.txt").exists());
}

#[test]
fn a_run_that_died_with_its_collector_is_recovered_by_the_next_command() {
    let p = Project::new();
    p.write("a", "alpha\n");
    let mut roar = p
        .command(&["run", "-q", "sh", "-c", "cat a > /dev/null; sleep 2"])
        .spawn()
        .unwrap();
    let db = p.file(".roar/roar.db");
    let collector = wait_for_collector(&db);
    std::thread::sleep(Duration::from_millis(500));
    for pid in [roar.id() as i32, collector] {
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
    }
    let _ = roar.wait();
    let out = p.roar(&["log", "--json"]);
    assert!(
        text(&out.stderr).contains("interrupted run"),
        "{}",
        text(&out.stderr)
    );
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log[0]["incomplete"], true);
    assert_eq!(log[0]["exit_status"], -1);
    let job = p.json(&["show", "@1"]);
    entry(&job, "inputs", &p.file("a"));
    // Recorded once: the next command finds nothing left to recover.
    assert_eq!(p.json(&["log"]).as_array().unwrap().len(), 1);
}

#[test]
fn package_reads_become_the_interpreter_and_distributions() {
    let p = Project::new();
    let site = p.file("vendor/site-packages");
    std::fs::create_dir_all(site.join("fakepkg")).unwrap();
    std::fs::write(site.join("fakepkg/__init__.py"), "VALUE = 7\n").unwrap();
    let info = site.join("fakepkg-1.2.3.dist-info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(
        info.join("METADATA"),
        "Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.2.3\n",
    )
    .unwrap();
    std::fs::write(info.join("top_level.txt"), "fakepkg\n").unwrap();
    p.write(
        "use.py",
        "import fakepkg\nopen('out.txt', 'w').write(str(fakepkg.VALUE))\n",
    );
    let out = p
        .command(&["run", "-q", "python3", "use.py"])
        .env("PYTHONPATH", &site)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job = p.json(&["show", "@1"]);
    // The package's files are not lineage...
    assert!(paths(&job, "inputs")
        .iter()
        .all(|i| !i.contains("site-packages")));
    // ...they are the job's environment.
    let dists = job["distributions"].as_array().unwrap();
    assert!(
        dists.contains(&serde_json::json!({"name": "fakepkg", "version": "1.2.3"})),
        "{dists:?}"
    );
    let version = Command::new("python3").arg("--version").output().unwrap();
    let version = text(&version.stdout)
        .trim()
        .trim_start_matches("Python ")
        .to_string();
    let interpreters = job["interpreters"].as_array().unwrap();
    assert!(
        interpreters
            .iter()
            .any(|i| i["version"] == version.as_str()),
        "{interpreters:?} (want {version})"
    );
}

#[test]
fn inputs_are_hashed_as_read_and_never_twice() {
    let p = Project::new();
    p.write("a", "version one\n");
    let old = b3(&p.file("a"));
    let child = p
        .command(&["run", "-q", "sh", "-c", "cat a > /dev/null; sleep 1"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // Changed after the job read it, before the job ended.
    p.write("a", "version two, longer\n");
    assert!(child.wait_with_output().unwrap().status.success());
    let job = p.json(&["show", "@1"]);
    assert_eq!(entry(&job, "inputs", &p.file("a"))["hash"], old.as_str());

    // Unchanged inputs: the second run hashes nothing.
    p.write("b", "stable\n");
    p.run_ok(&["cat", "b"]);
    p.run_ok(&["cat", "b"]);
    let second = p.json(&["show", "@3"]);
    assert_eq!(second["stats"]["hashed_bytes"], 0, "{}", second["stats"]);
    assert_eq!(second["stats"]["cache_hits"], 1);
}

#[test]
fn outputs_are_hashed_once_closed_and_checked_again_at_the_end() {
    let p = Project::new();
    // `b` is closed (hashed early), then changed through a second fd that
    // sends no close; `a` is closed and left alone.
    let script = "import os, time\n\
        fd = os.open('b', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n\
        os.write(fd, b'first')\n\
        keep = os.dup(fd)\n\
        os.close(fd)\n\
        time.sleep(0.5)\n\
        os.write(keep, b' and more')\n\
        with open('a', 'w') as f:\n    f.write('done')\n\
        time.sleep(0.3)\n";
    p.run_ok(&["python3", "-c", script]);
    let job = p.json(&["show", "@1"]);
    assert_eq!(
        entry(&job, "outputs", &p.file("b"))["hash"],
        b3(&p.file("b")).as_str()
    );
    assert_eq!(
        entry(&job, "outputs", &p.file("a"))["hash"],
        b3(&p.file("a")).as_str()
    );
    assert_eq!(job["stats"]["hashed_early"], 1, "{}", job["stats"]);
    assert_eq!(job["stats"]["hashed_files"], 2, "{}", job["stats"]);
}

#[test]
fn version_names_the_commit_and_completions_are_generated() {
    let out = Command::new(roar_exe()).arg("--version").output().unwrap();
    let version = text(&out.stdout);
    assert!(
        version.starts_with("roar ") && version.contains("(commit "),
        "{version}"
    );
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef roar"),
        ("fish", "complete -c roar"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = Command::new(roar_exe())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains(marker) && script.contains("lineage"),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
    }
    let bad = Command::new(roar_exe())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn tracer_probes_preload_for_real_and_says_what_is_wrong() {
    let out = Command::new(roar_exe()).arg("tracer").output().unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(
        shown.starts_with("preload  ready  ") && shown.contains("probe answered"),
        "{shown}"
    );
    assert!(shown.contains("ptrace   not available"));

    // A roar with no library beside it, then with something that is not one.
    let alone = tempfile::tempdir().unwrap();
    let roar = alone.path().join("roar");
    std::fs::copy(roar_exe(), &roar).unwrap();
    let check = |shim: Option<&Path>| {
        let mut cmd = Command::new(&roar);
        clean(&mut cmd).args(["tracer", "check"]);
        if let Some(s) = shim {
            cmd.env("ROAR_SHIM", s);
        }
        cmd.output().unwrap()
    };
    for shim in [None, Some(alone.path().join("missing.so"))] {
        let out = check(shim.as_deref());
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(
            err.contains("cannot find libroar.so") && err.lines().count() == 1,
            "{err}"
        );
    }
    let fake = alone.path().join("libroar.so");
    std::fs::write(&fake, "not a library").unwrap();
    let out = check(Some(&fake));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("did not run the library") && err.lines().count() == 1,
        "{err}"
    );
    // And a run with it records the job but says nothing was traced.
    std::fs::copy(
        bin_dir().join("roar-collector"),
        alone.path().join("roar-collector"),
    )
    .unwrap();
    let p = Project::new();
    let mut run = Command::new(&roar);
    let out = clean(&mut run)
        .args(["run", "true"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: nothing was traced") && err.contains("did not run the library"),
        "{err}"
    );
}

#[test]
fn colour_only_when_forced_or_on_a_terminal_and_never_with_no_color() {
    let p = Project::new();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = p.command(&["run", "true"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        text(&cmd.output().unwrap().stderr)
    };
    assert!(!run(&[]).contains('\x1b'), "not a terminal: plain");
    assert!(run(&[("CLICOLOR_FORCE", "1")]).starts_with("\x1b[1;32mroar:\x1b[0m @2 recorded"));
    assert!(!run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\x1b'));
    let mut bad = p.command(&["show", "@99"]);
    let err = text(&bad.env("CLICOLOR_FORCE", "1").output().unwrap().stderr);
    assert!(err.starts_with("\x1b[1;31mroar:\x1b[0m "), "{err:?}");
}
