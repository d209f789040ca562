//! libroar.so in real processes: a small in-test collector listens on a Unix
//! socket, the programs run with `LD_PRELOAD`, and the decoded frames are
//! checked. Needs `sh`, coreutils and `python3` (tests needing Python skip
//! without it).

#![cfg(target_os = "linux")]

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use roar_protocol::{check_preamble, decode, read_frame, Bytes, Message, PREAMBLE_LEN};

/// `target/<profile>/libroar.so`, next to this test's `deps/` folder, built
/// (or brought up to date) once per test run: `cargo test` alone does not
/// build a cdylib that no test links.
fn lib() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().unwrap().parent().unwrap();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-q", "-p", "roar-shim"]);
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building roar-shim failed");
            let lib = profile_dir.join("libroar.so");
            assert!(lib.exists(), "{} is missing", lib.display());
            lib
        })
        .clone()
}

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "roar-shim-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.txt"), "hello\n").unwrap();
    dir
}

fn show(b: &Bytes) -> String {
    String::from_utf8_lossy(b.as_slice()).into_owned()
}

/// One line per message, e.g. `OPEN /dir/in.txt 1 3`.
fn line(m: &Message) -> String {
    match m {
        Message::Hello(h) => format!(
            "HELLO {} {} {} {}",
            h.pid,
            h.ppid,
            show(&h.exe),
            h.argv.iter().map(show).collect::<Vec<_>>().join(" ")
        ),
        Message::Open {
            path,
            access,
            result,
            ..
        } => format!("OPEN {} {access} {result}", show(path)),
        Message::Rename { from, to, .. } => format!("RENAME {} {}", show(from), show(to)),
        Message::Unlink { path, .. } => format!("UNLINK {}", show(path)),
        Message::Link {
            from, to, symbolic, ..
        } => format!("LINK {} {} {symbolic}", show(from), show(to)),
        Message::Chdir { path, .. } => format!("CHDIR {}", show(path)),
        Message::Exec { path, .. } => format!("EXEC {}", show(path)),
        Message::Exit { status, .. } => format!("EXIT {status}"),
        other => format!("{other:?}"),
    }
}

#[derive(Default)]
struct Conn {
    lines: Vec<String>,
    done: bool,
}

/// A collector that records every connection's messages as lines.
struct Collector {
    sock: PathBuf,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl Collector {
    fn start(dir: &Path) -> Collector {
        let sock = dir.join("c.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let all = conns.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let id = {
                    let mut c = all.lock().unwrap();
                    c.push(Conn::default());
                    c.len() - 1
                };
                let all = all.clone();
                std::thread::spawn(move || {
                    let mut p = [0u8; PREAMBLE_LEN];
                    let mut lines = Vec::new();
                    if s.read_exact(&mut p).is_ok() {
                        check_preamble(&p).unwrap();
                        let mut buf = Vec::new();
                        while let Ok(true) = read_frame(&mut s, &mut buf) {
                            let m: Message = decode(&buf).unwrap();
                            lines.push(line(&m));
                        }
                    }
                    let mut c = all.lock().unwrap();
                    c[id].lines = lines;
                    c[id].done = true;
                });
            }
        });
        Collector { sock, conns }
    }

    /// Runs `cmd` traced, in `dir`.
    fn run(&self, dir: &Path, cmd: &[&str]) -> Output {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .current_dir(dir)
            .env("LD_PRELOAD", lib())
            .env("ROAR_SOCKET", &self.sock)
            .env("ROAR_JOB", "job-1")
            .output()
            .unwrap()
    }

    /// Every connection's lines once all connections have ended.
    fn connections(&self) -> Vec<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stable = 0;
        let mut last = 0;
        loop {
            {
                let c = self.conns.lock().unwrap();
                if c.iter().all(|c| c.done) && c.len() == last {
                    stable += 1;
                    if stable >= 3 {
                        return c.iter().map(|c| c.lines.clone()).collect();
                    }
                } else {
                    stable = 0;
                }
                last = c.len();
            }
            assert!(Instant::now() < deadline, "connections did not end");
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

fn has_python() -> bool {
    Command::new("python3")
        .arg("-c")
        .arg("pass")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The connection whose Hello names `exe_suffix`, with its first argument.
fn conn_of<'a>(conns: &'a [Vec<String>], exe_suffix: &str) -> &'a [String] {
    conns
        .iter()
        .find(|c| {
            c.first()
                .and_then(|h| h.split(' ').nth(3))
                .is_some_and(|exe| exe.ends_with(exe_suffix))
        })
        .unwrap_or_else(|| panic!("no process running {exe_suffix}: {conns:#?}"))
}

fn hello_pids(conn: &[String]) -> (i32, i32) {
    let f: Vec<&str> = conn[0].split(' ').collect();
    (f[1].parse().unwrap(), f[2].parse().unwrap())
}

#[test]
fn shell_chain_reports_every_process_with_absolute_paths() {
    let dir = scratch("chain");
    let c = Collector::start(&dir);
    let out = c.run(
        &dir,
        &["sh", "-c", "cat in.txt > x; cp x y; mv y z; rm x; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3));
    let conns = c.connections();
    let d = dir.display();

    let sh = conns
        .iter()
        .find(|c| c.first().is_some_and(|h| h.contains(" sh -c ")) && c.contains(&"EXIT 3".into()))
        .expect("the shell's own connection");
    let (sh_pid, _) = hello_pids(sh);
    assert!(sh.contains(&format!("OPEN {d}/x 14 3")), "{sh:#?}");

    for tool in ["/cat", "/cp", "/mv", "/rm"] {
        let conn = conn_of(&conns, tool);
        assert_eq!(hello_pids(conn).1, sh_pid, "{conn:#?}");
        assert_eq!(conn.last().unwrap(), "EXIT 0", "{conn:#?}");
    }
    assert!(conn_of(&conns, "/cat").contains(&format!("OPEN {d}/in.txt 1 3")));
    let cp = conn_of(&conns, "/cp");
    assert!(
        cp.iter().any(|l| l.starts_with(&format!("OPEN {d}/x 1 "))),
        "{cp:#?}"
    );
    assert!(
        cp.iter().any(|l| l.starts_with(&format!("OPEN {d}/y 6 "))),
        "{cp:#?}"
    );
    assert!(conn_of(&conns, "/mv").contains(&format!("RENAME {d}/y {d}/z")));
    assert!(conn_of(&conns, "/rm").contains(&format!("UNLINK {d}/x")));
    // A forked shell that only execs connects no earlier than its new image,
    // which introduces itself with the same pid: one connection per tool.
    for tool in ["/cat", "/cp", "/mv", "/rm"] {
        let (pid, _) = hello_pids(conn_of(&conns, tool));
        let per_pid = conns.iter().filter(|c| hello_pids(c).0 == pid).count();
        assert_eq!(per_pid, 1, "{tool}: {conns:#?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn env_i_in_a_chain_is_still_traced() {
    let dir = scratch("envi");
    let c = Collector::start(&dir);
    let out = c.run(&dir, &["env", "-i", "sh", "-c", "cat in.txt"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello\n");
    let conns = c.connections();
    let cat = conn_of(&conns, "/cat");
    assert!(
        cat.contains(&format!("OPEN {}/in.txt 1 3", dir.display())),
        "{cat:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_collector_the_program_runs_as_before() {
    let dir = scratch("passive");
    let out = Command::new("sh")
        .args(["-c", "cat in.txt; cat missing; exit 7"])
        .current_dir(&dir)
        .env("LD_PRELOAD", lib())
        .env("ROAR_SOCKET", dir.join("nobody.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stdout, b"hello\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing") && !err.contains("roar"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_sees_its_own_errno_and_the_shim_sees_python() {
    if !has_python() {
        eprintln!("skipped: no python3");
        return;
    }
    let dir = scratch("python");
    let c = Collector::start(&dir);
    let script = r#"
import os, sys
try:
    open("/nonexistent/file")
except FileNotFoundError as e:
    print(e.errno)
open("out.txt", "w").write("x")
os.rename("out.txt", "moved.txt")
os.symlink("moved.txt", "link")
os.mkdir("sub"); os.chdir("sub")
open("../in.txt").read()
os.closerange(3, 65536)
for fd in range(3, 1024):
    try: os.close(fd)
    except OSError: pass
open("after-close.txt", "w").close()
pid = os.fork()
if pid == 0:
    open("child.txt", "w").close()
    os._exit(5)
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st))
os.environ.clear()
os.system("cat ../in.txt")
sys.exit(4)
"#;
    let out = c.run(&dir, &["python3", "-c", script]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n5\nhello\n");
    let conns = c.connections();
    let d = dir.display();
    let py = conns
        .iter()
        .find(|c| c.last().is_some_and(|l| l == "EXIT 4"))
        .unwrap_or_else(|| panic!("{conns:#?}"));
    let (py_pid, _) = hello_pids(py);
    for want in [
        "OPEN /nonexistent/file 1 -2".to_string(),
        format!("RENAME {d}/out.txt {d}/moved.txt"),
        format!("LINK moved.txt {d}/link true"),
        format!("CHDIR {d}/sub"),
        format!("OPEN {d}/sub/../in.txt 1 3"),
    ] {
        assert!(py.contains(&want), "{want} not in {py:#?}");
    }
    assert!(py
        .iter()
        .any(|l| l.starts_with(&format!("OPEN {d}/out.txt 14 "))));
    assert!(py
        .iter()
        .any(|l| l.starts_with(&format!("OPEN {d}/sub/after-close.txt 14 "))));
    let child = conns
        .iter()
        .find(|c| c.last().is_some_and(|l| l == "EXIT 5"))
        .unwrap_or_else(|| panic!("{conns:#?}"));
    assert_eq!(hello_pids(child).1, py_pid);
    assert!(child
        .iter()
        .any(|l| l.starts_with(&format!("OPEN {d}/sub/child.txt 14 "))));
    // os.system after the environment was cleared: the shell and cat are traced.
    let cat = conn_of(&conns, "/cat");
    assert!(
        cat.contains(&format!("OPEN {d}/sub/../in.txt 1 3")),
        "{cat:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
