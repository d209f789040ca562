//! Helpers for tests that drive the built binaries. Build them first:
//! `cargo build --workspace` (the README's test command does).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// `target/<profile>/`, where cargo put roar, roar-collector and libroar.so.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .to_path_buf();
    for f in ["roar", "roar-collector", "libroar.so"] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run `cargo build --workspace` before the tests",
            dir.join(f).display()
        );
    }
    dir
}

pub fn roar_exe() -> PathBuf {
    bin_dir().join("roar")
}

/// The environment every spawned command gets: no outer tracing, no CI
/// variables that could change roar's behaviour.
pub fn clean(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LD_PRELOAD")
        .env_remove("ROAR_SOCKET")
        .env_remove("ROAR_JOB")
        .env_remove("ROAR_SHIM")
        .env_remove("CLICOLOR_FORCE")
        // The suites never send telemetry, however they are run.
        .env("ROAR_NO_TELEMETRY", "1")
}

/// A fresh project folder with `roar init` done.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let p = Project::bare();
        let out = p.roar(&["init"]);
        assert!(out.status.success(), "roar init: {}", text(&out.stderr));
        p
    }

    /// A folder without `roar init`.
    pub fn bare() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("roar-test-")
            .tempdir()
            .expect("temp dir");
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.file(name), content).expect("write fixture");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(roar_exe());
        clean(&mut cmd).args(args).current_dir(self.path());
        cmd
    }

    pub fn roar(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn roar")
    }

    /// Runs a roar query with `--json` and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.roar(&all);
        assert!(
            out.status.success(),
            "roar {all:?} failed: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("roar {all:?}: not JSON ({e}): {}", text(&out.stdout)))
    }

    /// `roar run ARGS...`, asserting roar itself reported success.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let out = self.roar(&all);
        assert!(
            out.status.success(),
            "roar run {args:?} failed ({:?}): {}",
            out.status,
            text(&out.stderr)
        );
        out
    }
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn b3(path: &Path) -> String {
    let data = std::fs::read(path).expect("read file to hash");
    blake3::hash(&data).to_hex().to_string()
}

/// Paths of a job's `inputs` or `outputs` list.
pub fn paths(job: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = job[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing in {job}"))
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect();
    v.sort();
    v
}

/// The `{path, hash, size}` entry for `path` in a job's list.
pub fn entry<'a>(job: &'a Value, key: &str, path: &Path) -> &'a Value {
    let p = path.to_str().expect("utf-8 test path");
    job[key]
        .as_array()
        .expect("list")
        .iter()
        .find(|f| f["path"] == p)
        .unwrap_or_else(|| panic!("{p} not in {key}: {}", job[key]))
}

/// Compiles C `src` into `name` in the project, with extra compiler flags.
pub fn build_c(p: &Project, name: &str, src: &str, flags: &[&str]) -> bool {
    p.write(&format!("{name}.c"), src);
    Command::new("cc")
        .args(flags)
        .args(["-o", name, &format!("{name}.c")])
        .current_dir(p.path())
        .status()
        .is_ok_and(|s| s.success())
}

/// `strace -f -o` output as (pid, call) pairs, with the `<unfinished ...>`
/// and `<... resumed>` halves of interrupted calls joined.
pub fn strace_calls(trace: &str) -> Vec<(String, String)> {
    let mut pending: std::collections::BTreeMap<String, String> = Default::default();
    let mut calls = Vec::new();
    for line in trace.lines() {
        let (pid, rest) = line.split_once(char::is_whitespace).unwrap_or(("", line));
        let rest = rest.trim_start();
        let call = if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid.to_string(), head.to_string());
            continue;
        } else if rest.starts_with("<...") {
            let tail = rest.split_once("resumed>").map_or("", |(_, t)| t);
            format!("{}{}", pending.remove(pid).unwrap_or_default(), tail)
        } else {
            rest.to_string()
        };
        calls.push((pid.to_string(), call));
    }
    calls
}

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
