//! The shim under conditions a traced program may create: a collector that
//! stops reading, swapped files, out-of-range exit codes.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use roar_tests::*;

#[test]
fn a_collector_that_stops_reading_does_not_hang_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stalled.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    // Accepts every connection and never reads from it.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let program = "import os\nfor i in range(100000):\n    os.close(os.open('/dev/null', os.O_RDONLY))\nprint('done')";
    let mut child = clean(&mut Command::new("python3"))
        .args(["-c", program])
        .env("LD_PRELOAD", bin_dir().join("libroar.so"))
        .env("ROAR_SOCKET", &socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the traced program hung behind a stalled collector");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert_eq!(out, "done\n");
    assert_eq!(err, "");
}

#[test]
fn swapped_files_are_both_outputs_with_their_new_content() {
    if !have("cc") {
        return;
    }
    let p = Project::new();
    p.write(
        "swap.c",
        r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
int main(void) {
    FILE *f = fopen("x.txt", "w"); fputs("new\n", f); fclose(f);
    return renameat2(AT_FDCWD, "x.txt", AT_FDCWD, "y.txt", RENAME_EXCHANGE) != 0;
}
"#,
    );
    p.write("y.txt", "old\n");
    let built = Command::new("cc")
        .args(["-o", "swap", "swap.c"])
        .current_dir(p.path())
        .status()
        .unwrap();
    assert!(built.success());
    p.run_ok(&["./swap"]);
    let job = p.json(&["show", "@1"]);
    assert_eq!(std::fs::read_to_string(p.file("y.txt")).unwrap(), "new\n");
    assert_eq!(
        entry(&job, "outputs", &p.file("y.txt"))["hash"],
        b3(&p.file("y.txt"))
    );
    assert_eq!(
        entry(&job, "outputs", &p.file("x.txt"))["hash"],
        b3(&p.file("x.txt"))
    );
}

#[test]
fn exit_codes_are_recorded_as_the_parent_sees_them() {
    let p = Project::new();
    let inner = "import os; os._exit(257)";
    let outer = format!(
        "import subprocess, sys; sys.exit(subprocess.run(['python3', '-c', {inner:?}]).returncode)"
    );
    let out = p.roar(&["run", "python3", "-c", &outer]);
    assert_eq!(out.status.code(), Some(1));
    let job = p.json(&["show", "@1"]);
    assert_eq!(job["exit_status"], 1);
    let statuses: Vec<_> = job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pr| {
            // The interpreter itself, not a launcher shim forwarding its argv.
            let exe = pr["exe"].as_str().unwrap_or("");
            exe.rsplit('/').next().unwrap_or("").starts_with("python")
                && pr["argv"].to_string().contains("_exit(257)")
        })
        .map(|pr| pr["exit_status"].clone())
        .collect();
    assert!(!statuses.is_empty(), "{}", job["processes"]);
    assert!(statuses.iter().all(|s| s == 1), "{statuses:?}");
}

const WRITER: &str = r#"#include <stdio.h>
int main(void) { FILE *f = fopen(OUT, "w"); fputs("x\n", f); fclose(f); puts(OUT); return 0; }
"#;

#[test]
fn untraceable_executables_are_reported_with_the_reason() {
    if !have("cc") {
        return;
    }
    let p = Project::new();
    let static_ok = build_c(&p, "st", WRITER, &["-static", "-DOUT=\"static_out.txt\""]);
    assert!(static_ok, "cc -static failed (libc6-dev provides libc.a)");
    // A Go build-id note (what Go's linker writes) on a C program.
    let go_note = "__asm__(\".section .note.go.buildid,\\\"a\\\",@note\\n.balign 4\\n.long 4\\n\
                   .long 8\\n.long 4\\n.asciz \\\"Go\\\"\\n.balign 4\\n.ascii \\\"abcdefgh\\\"\\n.previous\\n\");\n";
    assert!(build_c(
        &p,
        "fakego",
        &format!("{go_note}{WRITER}"),
        &["-DOUT=\"go_out.txt\""]
    ));
    assert!(build_c(&p, "plain", WRITER, &["-DOUT=\"plain_out.txt\""]));

    let out = p.roar(&["run", "sh", "-c", "./st && env ./fakego && ./plain"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "static_out.txt\ngo_out.txt\nplain_out.txt\n"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("untraced:") && err.contains("statically linked"),
        "{err}"
    );

    let job = p.json(&["show", "@1"]);
    let untraced = job["untraced"].as_array().unwrap();
    let reason_of = |name: &str| {
        untraced
            .iter()
            .find(|u| u["exe"] == p.file(name).to_str().unwrap())
            .map(|u| u["reason"].as_str().unwrap().to_string())
    };
    assert_eq!(reason_of("st").as_deref(), Some("static"), "{untraced:?}");
    assert_eq!(reason_of("fakego").as_deref(), Some("go"), "{untraced:?}");
    assert_eq!(reason_of("plain"), None);
    assert_eq!(untraced.len(), 2);
    // What the static binary wrote is invisible; the others' writes are not.
    let outputs = paths(&job, "outputs");
    assert!(!outputs.iter().any(|o| o.ends_with("static_out.txt")));
    assert!(outputs.iter().any(|o| o.ends_with("go_out.txt")));
    assert!(outputs.iter().any(|o| o.ends_with("plain_out.txt")));

    // The command roar starts itself is checked too.
    let out = p.roar(&["run", "./st"]);
    assert!(
        text(&out.stderr).contains("statically linked"),
        "{}",
        text(&out.stderr)
    );
    let job = p.json(&["show", "@2"]);
    assert_eq!(
        job["untraced"],
        serde_json::json!([{"exe": p.file("st").to_str().unwrap(), "reason": "static"}])
    );
}

#[test]
fn setuid_executables_are_reported_unless_the_mount_ignores_setuid() {
    let p = Project::new();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0");
    if !is_root {
        return;
    }
    let exe = p.file("suidcat");
    std::fs::copy("/bin/cat", &exe).unwrap();
    let setup = Command::new("sh")
        .args(["-c", "chown nobody suidcat && chmod u+s suidcat"])
        .current_dir(p.path())
        .status()
        .unwrap();
    assert!(setup.success());
    p.write("in.txt", "data\n");
    let out = p.roar(&["run", "./suidcat", "in.txt"]);
    assert_eq!(text(&out.stdout), "data\n");
    let job = p.json(&["show", "@1"]);
    let nosuid = Command::new("findmnt")
        .args(["-no", "OPTIONS", "-T"])
        .arg(p.path())
        .output()
        .is_ok_and(|o| text(&o.stdout).contains("nosuid"));
    if nosuid {
        assert_eq!(job["untraced"], serde_json::json!([]));
        entry(&job, "inputs", &p.file("in.txt"));
    } else {
        assert_eq!(
            job["untraced"],
            serde_json::json!([{"exe": exe.to_str().unwrap(), "reason": "setuid"}])
        );
    }
}

#[test]
fn truncate_mkstemp_and_execveat_are_seen() {
    if !have("cc") {
        return;
    }
    let p = Project::new();
    let src = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    if (truncate("cut.txt", 2)) return 10;
    char t[] = "made_XXXXXX";
    int fd = mkstemp(t);
    if (fd < 0 || write(fd, "m\n", 2) != 2) return 11;
    close(fd);
    char *argv[] = {"cat", "seen_by_cat.txt", NULL};
    char *empty_env[] = {NULL};
    execveat(AT_FDCWD, "/bin/cat", argv, empty_env, 0);
    return 12;
}
"#;
    assert!(build_c(&p, "cov", src, &[]));
    p.write("cut.txt", "hello\n");
    p.write("seen_by_cat.txt", "cat read me\n");
    let out = p.roar(&["run", "./cov"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "cat read me\n");
    let job = p.json(&["show", "@1"]);
    assert_eq!(
        entry(&job, "outputs", &p.file("cut.txt"))["hash"],
        b3(&p.file("cut.txt"))
    );
    let made: Vec<String> = paths(&job, "outputs")
        .into_iter()
        .filter(|o| o.contains("/made_"))
        .collect();
    assert_eq!(made.len(), 1, "{}", job["outputs"]);
    assert_eq!(std::fs::read_to_string(&made[0]).unwrap(), "m\n");
    // execveat with an empty environment still carried the tracing to cat.
    entry(&job, "inputs", &p.file("seen_by_cat.txt"));
}

#[test]
fn frames_never_land_in_a_file_the_program_reused_our_fd_for() {
    if !have("cc") {
        return;
    }
    let p = Project::new();
    // Closes every fd with a raw system call (no hook sees it), then fills
    // the fd table with a pipe's write end, so the shim's old fd number now
    // names the program's pipe.
    let src = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    syscall(SYS_close_range, 3, ~0U, 0);
    int p[2];
    if (pipe2(p, O_NONBLOCK)) return 1;
    for (int fd = 5; fd < 1024; fd++) dup2(p[1], fd);
    for (int i = 0; i < 20; i++) {
        char name[32]; snprintf(name, sizeof name, "after_%d.txt", i);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        write(fd, "x", 1); close(fd);
    }
    char buf[4096];
    ssize_t n = read(p[0], buf, sizeof buf);
    printf("pipe received %zd bytes\n", n < 0 ? 0 : n);
    return 0;
}
"#;
    assert!(build_c(&p, "reuse", src, &[]));
    let out = p.roar(&["run", "./reuse"]);
    assert_eq!(
        text(&out.stdout),
        "pipe received 0 bytes\n",
        "{}",
        text(&out.stderr)
    );
    let job = p.json(&["show", "@1"]);
    for i in 0..20 {
        entry(&job, "outputs", &p.file(&format!("after_{i}.txt")));
    }
}

#[test]
fn a_child_forked_by_raw_syscall_never_writes_on_its_parents_connection() {
    if !have("cc") {
        return;
    }
    let p = Project::new();
    let src = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static void touch(const char *name) { close(open(name, O_WRONLY | O_CREAT, 0644)); }
int main(void) {
    touch("parent_before.txt");
    long pid = syscall(SYS_fork);
    if (pid == 0) {
        for (int i = 0; i < 2000; i++) touch("child.txt");
        syscall(SYS_exit_group, 0);
    }
    for (int i = 0; i < 2000; i++) touch("parent_during.txt");
    waitpid(pid, NULL, 0);
    touch("parent_after.txt");
    return 0;
}
"#;
    assert!(build_c(&p, "rawfork", src, &[]));
    p.run_ok(&["./rawfork"]);
    let job = p.json(&["show", "@1"]);
    for f in ["parent_before.txt", "parent_during.txt", "parent_after.txt"] {
        entry(&job, "outputs", &p.file(f));
    }
    let log = std::fs::read_to_string(p.file(".roar/collector.log")).unwrap_or_default();
    assert!(!log.contains("undecodable"), "interleaved frames: {log}");
}

/// More processes at once than the collector has fds: connections wait in
/// the socket's backlog and are taken as others end, so the job finishes
/// with every process and its writes recorded.
#[test]
fn a_collector_short_of_fds_still_records_every_process() {
    let p = Project::new();
    p.write(
        "crowd.sh",
        "for i in $(seq 60); do sleep 1 & done\nsleep 0.3\necho x > late.txt\nwait\n",
    );
    let script = format!(
        "ulimit -n 40 && exec timeout -s KILL 60 {} run -q sh crowd.sh",
        roar_exe().display()
    );
    let out = clean(&mut Command::new("sh"))
        .args(["-c", &script])
        .current_dir(p.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = std::fs::read_to_string(p.file(".roar/collector.log")).unwrap_or_default();
    assert!(
        log.contains("Too many open files"),
        "the fd limit was reached: {log}"
    );
    let job = p.json(&["show", "@1"]);
    let sleeps = job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pr| pr["exe"].as_str().unwrap().ends_with("/sleep"))
        .count();
    assert_eq!(sleeps, 61);
    entry(&job, "outputs", &p.file("late.txt"));
}
