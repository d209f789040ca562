//! The conformance corpus (`tests/conformance/*/`): each case is a command
//! (`cmd`, run with `sh -c`) and its fixture files; a `prog.c` is compiled to
//! `./prog` first. Every case runs once under `strace -f` and once under
//! `roar run`, in separate copies; per process (identified by its argv), the
//! files inside the case folder that it read and wrote must be the same.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use roar_tests::*;

/// (argv, reads, writes) of one process; paths relative to the case folder.
type Access = (Vec<String>, BTreeSet<String>, BTreeSet<String>);

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn prepare(case: &Path, dir: &Path) {
    copy_dir(case, dir);
    if dir.join("prog.c").exists() {
        let ok = Command::new("cc")
            .args(["-o", "prog", "prog.c"])
            .current_dir(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{}: prog.c does not compile", case.display());
    }
}

fn quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            let mut q = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => q.extend(chars.next()),
                    '"' => break,
                    c => q.push(c),
                }
            }
            out.push(q);
        }
    }
    out
}

/// `N</abs/path>` → the path (strace -y).
fn fd_path(s: &str) -> Option<&str> {
    let start = s.find('<')? + 1;
    let end = s[start..].find('>')? + start;
    Some(&s[start..end])
}

fn join(base: &str, p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{base}/{p}")
    }
}

/// The directory a `*at` call's path is relative to: `AT_FDCWD` or `N</dir>`.
fn at_base<'a>(arg: &'a str, cwd: &'a str) -> &'a str {
    fd_path(arg).unwrap_or(cwd)
}

/// Per-process read and write sets from `strace -f -y` output.
fn strace_access(trace: &str, root: &str, top_cwd: &str) -> Vec<Access> {
    #[derive(Default, Clone)]
    struct P {
        argv: Vec<String>,
        cwd: String,
        reads: BTreeSet<String>,
        writes: BTreeSet<String>,
    }
    let mut procs: BTreeMap<String, P> = BTreeMap::new();
    // strace -f names threads by their own ids: a thread is its process.
    let mut process_of: BTreeMap<String, String> = BTreeMap::new();
    let rel = |p: &str| -> Option<String> {
        let p = Path::new(p);
        let r = p.strip_prefix(root).ok()?.to_string_lossy().into_owned();
        (!r.is_empty() && !r.starts_with(".roar")).then_some(r)
    };
    for (pid, call) in strace_calls(trace) {
        let pid = pid.as_str();
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        let pid = process_of.get(pid).map_or(pid, String::as_str);
        let Some((args, ret)) = args.rsplit_once(" = ") else {
            continue;
        };
        let ret = ret.trim();
        if ret.starts_with('-') || ret.starts_with('?') {
            continue;
        }
        let me = procs
            .entry(pid.to_string())
            .or_insert_with(|| P {
                cwd: top_cwd.to_string(),
                ..P::default()
            })
            .clone();
        let cwd = me.cwd.clone();
        let p = procs.get_mut(pid).unwrap();
        let q = quoted(args);
        let parts: Vec<&str> = args.split(", ").collect();
        match name {
            "execve" | "execveat" => {
                if let Some(list) = args.split_once('[').and_then(|(_, r)| r.split_once(']')) {
                    p.argv = quoted(list.0);
                }
            }
            "clone" | "clone3" | "fork" | "vfork" => {
                let child = ret.split_whitespace().next().unwrap_or("").to_string();
                if args.contains("CLONE_THREAD") {
                    process_of.insert(child, pid.to_string());
                } else {
                    let fresh = P {
                        reads: BTreeSet::new(),
                        writes: BTreeSet::new(),
                        ..me
                    };
                    // The child may have been seen first (it can run before the
                    // parent's clone returns): keep what it already did.
                    let seen = procs.entry(child).or_insert_with(|| fresh.clone());
                    if seen.argv.is_empty() {
                        seen.argv = fresh.argv;
                    }
                }
            }
            "chdir" => p.cwd = join(&cwd, &q[0]),
            "fchdir" => {
                if let Some(d) = fd_path(args) {
                    p.cwd = d.to_string();
                }
            }
            "open" | "openat" | "creat" => {
                if args.contains("O_DIRECTORY")
                    || args.contains("O_TMPFILE")
                    || args.contains("O_PATH")
                {
                    continue;
                }
                let Some(path) = fd_path(ret).and_then(rel) else {
                    continue;
                };
                let wronly = args.contains("O_WRONLY");
                if !wronly && name != "creat" {
                    p.reads.insert(path.clone());
                }
                if wronly || args.contains("O_RDWR") || name == "creat" {
                    p.writes.insert(path);
                }
            }
            "rename" | "link" | "symlink" | "truncate" => {
                if let Some(target) = q.last().filter(|_| name != "truncate" || q.len() == 1) {
                    let target = if name == "truncate" { &q[0] } else { target };
                    if let Some(t) = rel(&join(&cwd, target)) {
                        p.writes.insert(t);
                    }
                }
            }
            "renameat" | "renameat2" | "linkat" => {
                if let (Some(dirfd), Some(target)) = (parts.get(2), q.last()) {
                    if let Some(t) = rel(&join(at_base(dirfd, &cwd), target)) {
                        p.writes.insert(t);
                    }
                }
            }
            "symlinkat" => {
                if let (Some(dirfd), Some(target)) = (parts.get(1), q.last()) {
                    if let Some(t) = rel(&join(at_base(dirfd, &cwd), target)) {
                        p.writes.insert(t);
                    }
                }
            }
            _ => {}
        }
    }
    procs
        .into_values()
        .filter(|p| !p.reads.is_empty() || !p.writes.is_empty())
        .map(|p| (p.argv, p.reads, p.writes))
        .collect()
}

fn roar_access(job: &serde_json::Value, root: &Path) -> Vec<Access> {
    let rel = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|p| Path::new(p.as_str().unwrap()).strip_prefix(root).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    };
    job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let argv = p["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (argv, rel(&p["reads"]), rel(&p["writes"]))
        })
        .filter(|(_, r, w)| !r.is_empty() || !w.is_empty())
        .collect()
}

/// Temporary names differ from run to run: mkstemp-style `tmp_XXXXXX` and
/// gcc's `/tmp/ccXXXXXX` get their six random characters masked.
fn mask_random(s: &str) -> String {
    // sed -i's temporary file: "sed" and six random characters.
    let sed_tmp =
        s.len() == 9 && s.starts_with("sed") && s[3..].chars().all(|c| c.is_ascii_alphanumeric());
    if sed_tmp {
        return "sedXXXXXX".into();
    }
    let mut out = s.to_string();
    for prefix in ["tmp_", "/tmp/cc"] {
        let mut from = 0;
        while let Some(i) = out[from..].find(prefix).map(|i| i + from) {
            let start = i + prefix.len();
            let end = start + 6;
            if out.len() >= end && out[start..end].chars().all(|c| c.is_ascii_alphanumeric()) {
                out.replace_range(start..end, "XXXXXX");
            }
            from = start;
        }
    }
    out
}

fn masked(list: Vec<Access>) -> Vec<Access> {
    let set = |s: BTreeSet<String>| s.iter().map(|p| mask_random(p)).collect();
    let mut list: Vec<Access> = list
        .into_iter()
        .map(|(argv, r, w)| {
            (
                argv.iter().map(|a| mask_random(a)).collect(),
                set(r),
                set(w),
            )
        })
        .collect();
    list.sort();
    list
}

fn check(case: &Path) -> Result<(), String> {
    let cmd = std::fs::read_to_string(case.join("cmd")).unwrap();
    let cmd = cmd.trim();
    let truth = tempfile::tempdir().unwrap();
    let truth_root = truth.path().join("case");
    prepare(case, &truth_root);
    let trace = truth.path().join("trace.txt");
    let traced = clean(&mut Command::new("strace"))
        .args(["-f", "-qq", "-y", "-s", "4096", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=open,openat,creat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,\
             truncate,chdir,fchdir,execve,execveat,clone,clone3,fork,vfork",
            "--",
            "sh",
            "-c",
            cmd,
        ])
        .current_dir(&truth_root)
        .output()
        .unwrap();
    if !traced.status.success() {
        return Err(format!("fails under strace: {}", text(&traced.stderr)));
    }
    let root = truth_root.to_str().unwrap();
    let want = masked(strace_access(
        &std::fs::read_to_string(&trace).unwrap(),
        root,
        root,
    ));

    let p = Project::new();
    prepare(case, p.path());
    let out = p.roar(&["run", "-q", "sh", "-c", cmd]);
    if !out.status.success() {
        return Err(format!("fails under roar: {}", text(&out.stderr)));
    }
    let got = masked(roar_access(&p.json(&["show", "@1"]), p.path()));
    if want == got {
        Ok(())
    } else {
        Err(format!("\n  strace: {want:?}\n  roar:   {got:?}"))
    }
}

#[test]
fn corpus_matches_strace_per_process() {
    assert!(
        have("strace") && have("cc"),
        "strace and cc are required (.ci/run installs them)"
    );
    let corpus: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cmd").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "corpus shrank to {} cases", cases.len());
    // One line per case (scripts/conformance.sh shows them), then the total.
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        match check(case) {
            Ok(()) => println!("agree   {name}"),
            Err(e) => {
                println!("DIFFER  {name}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    println!(
        "{} of {} cases agree with strace",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
