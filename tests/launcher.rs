//! Launcher mode: `LD_PRELOAD=libroar.so` in a project, no `roar run`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use roar_tests::*;
use serde_json::Value;

fn shim() -> String {
    bin_dir().join("libroar.so").display().to_string()
}

/// A command as a launcher would start it: preloaded, nothing else.
fn launched(dir: &Path, script: &str) -> Command {
    let mut cmd = Command::new("sh");
    clean(&mut cmd)
        .args(["-c", script])
        .current_dir(dir)
        .env("LD_PRELOAD", shim())
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .stdin(Stdio::null());
    cmd
}

/// The jobs of the active session once `n` are recorded (the daemon records
/// a job shortly after its last process ends).
fn jobs(p: &Project, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = p.roar(&["log", "--json"]);
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if list.len() >= n || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(p: &Project) {
    let _ = p.roar(&["collector", "stop"]);
}

#[test]
fn parallel_launchers_are_separate_jobs_with_their_own_files() {
    let p = Project::new();
    for i in 0..4 {
        p.write(&format!("in{i}.txt"), &format!("input {i}\n"));
    }
    let children: Vec<_> = (0..4)
        .map(|i| {
            launched(p.path(), &format!("cat in{i}.txt > out{i}.txt; sleep 0.3"))
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let list = jobs(&p, 4);
    assert_eq!(list.len(), 4, "{list:?}");
    for job in &list {
        let full = p.json(&["show", job["uid"].as_str().unwrap()]);
        let inputs = paths(&full, "inputs");
        let outputs = paths(&full, "outputs");
        assert_eq!((inputs.len(), outputs.len()), (1, 1), "{full}");
        let i = inputs[0].trim_end_matches(".txt").chars().last().unwrap();
        assert!(
            outputs[0].ends_with(&format!("out{i}.txt")),
            "{inputs:?} → {outputs:?}"
        );
        assert_eq!(full["exit_status"], 0);
    }
    // Private: the project folder and the socket.
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&p.file(".roar")), 0o700);
    assert_eq!(mode(&p.file(".roar/collector.sock")), 0o600);
    let status = p.roar(&["collector", "status"]);
    assert_eq!(status.status.code(), Some(0));
    stop(&p);
    assert!(!p.file(".roar/collector.sock").exists());
    assert_eq!(p.roar(&["collector", "status"]).status.code(), Some(3));
}

#[test]
fn idle_collector_exits_and_a_stale_socket_is_replaced() {
    let p = Project::new();
    assert!(p
        .roar(&["config", "set", "collector.idle_timeout_s", "1"])
        .status
        .success());
    // A socket file nobody listens on, as a crashed collector leaves it.
    drop(std::os::unix::net::UnixListener::bind(p.file(".roar/collector.sock")).unwrap());
    p.write("a.txt", "a\n");
    let out: Output = launched(p.path(), "cat a.txt > b.txt").output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(jobs(&p, 1).len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.file(".roar/collector.sock").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !p.file(".roar/collector.sock").exists(),
        "the idle collector left"
    );
    assert!(!p.file(".roar/collector.pid").exists());
}

#[test]
fn without_a_project_the_shim_stays_passive_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let out = launched(dir.path(), "echo x > f").output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["f"], "nothing but the program's own file");
    let out = launched(dir.path(), "echo x > g")
        .env("ROAR_VERBOSE", "1")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no .roar/"), "{err}");
}

#[test]
fn env_prints_what_a_launcher_exports_and_start_is_explicit_too() {
    let p = Project::new();
    let sh = text(&p.roar(&["env"]).stdout);
    assert!(
        sh.contains(&format!("export LD_PRELOAD='{}'", shim())),
        "{sh}"
    );
    assert!(
        sh.contains("export ROAR_SOCKET='") && sh.contains(".roar/collector.sock'"),
        "{sh}"
    );
    let fish = text(&p.roar(&["env", "--shell", "fish"]).stdout);
    assert!(fish.starts_with("set -gx LD_PRELOAD "), "{fish}");
    assert_eq!(p.roar(&["env", "--shell", "tcsh"]).status.code(), Some(2));

    assert!(p.roar(&["collector", "start"]).status.success());
    assert!(text(&p.roar(&["collector", "start"]).stdout).contains("already running"));
    // With the exported variables, from another directory.
    let elsewhere = tempfile::tempdir().unwrap();
    p.write("data.csv", "1\n");
    let script = format!("cat {} > /dev/null", p.file("data.csv").display());
    let out = launched(elsewhere.path(), &script)
        .env("ROAR_SOCKET", p.file(".roar/collector.sock"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let list = jobs(&p, 1);
    let full = p.json(&["show", list[0]["uid"].as_str().unwrap()]);
    assert_eq!(
        paths(&full, "inputs"),
        [p.file("data.csv").to_str().unwrap()]
    );
    stop(&p);
}

#[test]
fn a_collector_that_cannot_start_says_why_once_and_programs_run_untraced() {
    let p = Project::new();
    std::fs::write(p.file(".roar/config.toml"), "[filters]\nbogus = true\n").unwrap();
    let out = launched(p.path(), "echo hi > a.txt; cat a.txt")
        .output()
        .unwrap();
    assert!(out.status.success() && text(&out.stdout) == "hi\n" && out.stderr.is_empty());
    let failed = p.file(".roar/collector.failed");
    let reason = std::fs::read_to_string(&failed).unwrap();
    assert!(reason.contains("unknown key filters.bogus"), "{reason}");
    // The next program does not start (and wait for) another one.
    let before = std::fs::metadata(&failed).unwrap().modified().unwrap();
    let out = launched(p.path(), "cat a.txt").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::metadata(&failed).unwrap().modified().unwrap(),
        before
    );
    assert!(!p.file(".roar/collector.sock").exists());
}

/// Context switches of every thread of process `pid`: each nap of a
/// polling thread is one.
fn switches(pid: &str) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[test]
fn a_collector_polls_only_while_traffic_flows() {
    let p = Project::new();
    p.write("a.txt", "a\n");
    // Traffic, then a traced process that stays connected and quiet.
    let mut child = launched(p.path(), "cat a.txt > b.txt; exec sleep 3")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let pid = std::fs::read_to_string(p.file(".roar/collector.pid")).unwrap();
    let pid = pid.trim();
    let before = switches(pid);
    std::thread::sleep(Duration::from_secs(1));
    let quiet = switches(pid) - before;
    assert!(child.wait().unwrap().success());
    // Polling every millisecond would be ~1,000 switches a second.
    assert!(quiet < 50, "{quiet} context switches in a quiet second");
    assert_eq!(jobs(&p, 1).len(), 1);
    stop(&p);
}
