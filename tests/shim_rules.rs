//! The shim's hard rules, each on a real program under `roar run`: the
//! program observes nothing different, and what it did is recorded.

use std::collections::BTreeSet;
use std::process::Command;

use roar_tests::*;

/// Output of the same program bare and traced must be identical.
fn same_as_bare(p: &Project, argv: &[&str]) -> String {
    let bare = clean(&mut Command::new(argv[0]))
        .args(&argv[1..])
        .current_dir(p.path())
        .output()
        .unwrap();
    let mut run = vec!["run", "-q"];
    run.extend_from_slice(argv);
    let traced = p.roar(&run);
    assert_eq!(text(&traced.stdout), text(&bare.stdout), "stdout differs");
    assert_eq!(text(&traced.stderr), text(&bare.stderr), "stderr differs");
    assert_eq!(traced.status.code(), bare.status.code());
    text(&traced.stdout)
}

#[test]
fn errno_is_what_libc_set() {
    let p = Project::new();
    let src = r#"#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    errno = 0;
    int fd = open("missing/file", O_RDONLY);
    printf("open missing: %d %s\n", fd, strerror(errno));
    fd = open(".", O_WRONLY);
    printf("open dir for writing: %d %s\n", fd, strerror(errno));
    FILE *f = fopen("missing/x", "r");
    printf("fopen missing: %p %s\n", (void *)f, strerror(errno));
    char *argv[] = {"notexec", NULL};
    execv("./notexec", argv);
    printf("exec non-executable: %s\n", strerror(errno));
    printf("rename missing: %d %s\n", rename("nope", "nope2"), strerror(errno));
    printf("unlink missing: %d %s\n", unlink("nope"), strerror(errno));
    errno = 1234;
    fd = open("in.txt", O_RDONLY);
    printf("success keeps errno: %d\n", errno);
    return 0;
}
"#;
    assert!(build_c(&p, "errnos", src, &[]));
    p.write("notexec", "not a program\n");
    p.write("in.txt", "x");
    let out = same_as_bare(&p, &["./errnos"]);
    assert!(
        out.contains("open missing: -1 No such file or directory"),
        "{out}"
    );
    assert!(
        out.contains("Is a directory") && out.contains("Permission denied"),
        "{out}"
    );
    assert!(out.contains("success keeps errno: 1234"), "{out}");
}

#[test]
fn a_program_that_closes_every_fd_is_still_traced() {
    let p = Project::new();
    let src = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
static void touch(const char *name) { int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644); write(fd, name, 1); close(fd); }
int main(void) {
    touch("before.txt");
    close_range(3, ~0U, 0);
    touch("after_close_range.txt");
    for (int fd = 3; fd < 4096; fd++) close(fd);
    touch("after_close_loop.txt");
    int keep = open("in.txt", O_RDONLY);
    for (int fd = 3; fd < 1024; fd++) if (fd != keep) dup2(keep, fd);
    touch("after_dup2.txt");
    puts("survived");
    return 0;
}
"#;
    assert!(build_c(&p, "closer", src, &[]));
    p.write("in.txt", "x");
    assert_eq!(same_as_bare(&p, &["./closer"]), "survived\n");
    let job = p.json(&["show", "@1"]);
    for f in [
        "before.txt",
        "after_close_range.txt",
        "after_close_loop.txt",
        "after_dup2.txt",
    ] {
        entry(&job, "outputs", &p.file(f));
    }
    entry(&job, "inputs", &p.file("in.txt"));
}

#[test]
fn fork_while_threads_emit_never_deadlocks() {
    let p = Project::new();
    let program = r#"
import os, threading
stop = False
def churn(i):
    while not stop:
        os.close(os.open(f"t{i}.txt", os.O_WRONLY | os.O_CREAT, 0o644))
threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
for t in threads: t.start()
for n in range(500):
    pid = os.fork()
    if pid == 0:
        os.close(os.open(f"child_{n}.txt", os.O_WRONLY | os.O_CREAT, 0o644))
        os._exit(0)
    os.waitpid(pid, 0)
stop = True
for t in threads: t.join()
print("done")
"#;
    p.write("forker.py", program);
    let out = p.run_ok(&["python3", "forker.py"]);
    assert_eq!(text(&out.stdout), "done\n");
    let job = p.json(&["show", "@1"]);
    let outputs = paths(&job, "outputs");
    let children = outputs.iter().filter(|o| o.contains("/child_")).count();
    assert_eq!(children, 500, "every forked child's file is recorded");
    let pids: BTreeSet<i64> = job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pr| pr["pid"].as_i64().unwrap())
        .collect();
    assert!(pids.len() > 500, "{} processes", pids.len());
}

#[test]
fn children_with_scrubbed_environments_are_traced() {
    let p = Project::new();
    let src = r#"#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    char *empty[] = {NULL};
    char *cat1[] = {"cat", "spawned.txt", NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/cat", NULL, NULL, cat1, empty) != 0) return 1;
    waitpid(pid, NULL, 0);
    pid = vfork();
    if (pid == 0) { execle("/bin/cat", "cat", "vforked.txt", (char *)NULL, empty); _exit(127); }
    waitpid(pid, NULL, 0);
    return 0;
}
"#;
    assert!(build_c(&p, "spawner", src, &[]));
    p.write("spawned.txt", "s\n");
    p.write("vforked.txt", "v\n");
    p.write("subproc.txt", "p\n");
    p.write("envi.txt", "e\n");
    assert_eq!(same_as_bare(&p, &["./spawner"]), "s\nv\n");
    p.write(
        "sub.py",
        "import subprocess\nsubprocess.run(['/bin/cat', 'subproc.txt'], env={})\n",
    );
    p.run_ok(&["python3", "sub.py"]);
    p.run_ok(&["env", "-i", "/bin/cat", "envi.txt"]);
    for (step, file) in [
        (1, "spawned.txt"),
        (1, "vforked.txt"),
        (2, "subproc.txt"),
        (3, "envi.txt"),
    ] {
        let job = p.json(&["show", &format!("@{step}")]);
        entry(&job, "inputs", &p.file(file));
    }
}

/// A vfork child runs on its parent's memory until it execs: what it does
/// to its own fds and directory (closing every fd, dup2 onto the shim's
/// socket number, chdir) must not disturb the parent's tracing, and its
/// exec is still traced, environment scrubbed or not.
#[test]
fn a_vfork_child_leaves_its_parent_traced() {
    let p = Project::new();
    let src = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    char *empty[] = {NULL};
    int kept = open("kept.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 6; i++) {
        pid_t pid = vfork();
        if (pid == 0) {
            close_range(3, ~0U, 0);
            dup2(1, 500);
            chdir("/");
            char *args[] = {"cat", getenv("IN"), NULL};
            execve("/bin/cat", args, i % 2 ? empty : environ);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || status != 0) return 1;
        char name[32];
        snprintf(name, sizeof name, "after_%d.txt", i);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        write(fd, name, 7);
        close(fd);
    }
    if (vfork() == 0) { execl("./st", "st", (char *)NULL); _exit(127); }
    wait(NULL);
    write(kept, "k\n", 2);
    close(kept);
    return 0;
}
"#;
    assert!(build_c(&p, "vf", src, &[]));
    assert!(build_c(
        &p,
        "st",
        "int main(void) { return 0; }\n",
        &["-static"]
    ));
    p.write("in.txt", "i\n");
    let input = p.file("in.txt");
    let out = p
        .command(&["run", "-q", "./vf"])
        .env("IN", &input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "i\n".repeat(6));

    let job = p.json(&["show", "@1"]);
    let procs = job["processes"].as_array().unwrap();
    let parent = procs
        .iter()
        .find(|pr| pr["exe"] == p.file("vf").to_str().unwrap())
        .expect("the parent is recorded");
    let mut written: Vec<String> = parent["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().rsplit('/').next().unwrap().to_string())
        .collect();
    written.sort();
    let mut expected: Vec<String> = (0..6).map(|i| format!("after_{i}.txt")).collect();
    expected.push("kept.txt".into());
    assert_eq!(written, expected, "the parent's own writes, all of them");
    let cats: Vec<_> = procs
        .iter()
        .filter(|pr| pr["exe"] == "/usr/bin/cat")
        .collect();
    assert_eq!(cats.len(), 6, "{procs:?}");
    for cat in cats {
        assert_eq!(cat["ppid"], parent["pid"]);
        assert_eq!(cat["reads"][0], input.to_str().unwrap());
    }
    let untraced = job["untraced"].as_array().unwrap();
    assert!(
        untraced
            .iter()
            .any(|u| u["exe"] == p.file("st").to_str().unwrap() && u["reason"] == "static"),
        "{untraced:?}"
    );
}

/// Signals hitting the thread that vforks, with a handler that makes a
/// hooked call, must not make the child look like its parent: the parent
/// would then find its connection given up by the child and trace nothing
/// more (a review found this; 5 runs in 5 lost the final write).
#[test]
fn signals_during_vfork_leave_the_parent_traced() {
    let p = Project::new();
    let src = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int stop;
static pid_t main_tid;
static void on_usr1(int s) { (void)s; close(-1); }
static void *pester(void *a) {
    (void)a;
    unsigned x = 1;
    while (!stop) {
        syscall(SYS_tgkill, getpid(), main_tid, SIGUSR1);
        x = x * 1103515245 + 12345;
        for (volatile unsigned i = 0; i < (x >> 20) % 4000; i++) ;
    }
    return NULL;
}
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    main_tid = gettid();
    pthread_t t;
    pthread_create(&t, NULL, pester, NULL);
    char *args[] = {"true", NULL};
    for (int i = 0; i < 300; i++) {
        pid_t pid = vfork();
        if (pid == 0) { execve("/bin/true", args, environ); _exit(127); }
        while (waitpid(pid, NULL, 0) < 0) ;
    }
    stop = 1;
    pthread_join(t, NULL);
    int fd = open("after.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, "x\n", 2);
    close(fd);
    return 0;
}
"#;
    assert!(build_c(&p, "race", src, &["-pthread"]));
    p.run_ok(&["./race"]);
    let job = p.json(&["show", "@1"]);
    entry(&job, "outputs", &p.file("after.txt"));
    assert_eq!(job["exit_status"], 0);
}

/// The library exports the libc names it stands for and nothing of its own.
#[test]
fn only_the_hooks_are_exported() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(roar_exe().with_file_name("libroar.so"))
        .output()
        .expect("nm (binutils)");
    let own: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|name| name.starts_with("roar") || name.starts_with('_') && name.contains("roar"))
        .map(str::to_string)
        .collect();
    assert!(out.status.success());
    assert!(own.is_empty(), "{own:?}");
}

#[test]
fn sixty_four_threads_and_ten_thousand_files() {
    let p = Project::new();
    std::fs::create_dir(p.file("many")).unwrap();
    for i in 0..10_000 {
        std::fs::write(p.file(&format!("many/{i}.txt")), i.to_string()).unwrap();
    }
    let program = r#"
import threading
def read(k):
    for i in range(k, 10000, 64):
        with open(f"many/{i}.txt") as f:
            f.read()
threads = [threading.Thread(target=read, args=(k,)) for k in range(64)]
for t in threads: t.start()
for t in threads: t.join()
"#;
    p.write("threads.py", program);
    p.run_ok(&["python3", "threads.py"]);
    let job = p.json(&["show", "@1"]);
    let inputs = paths(&job, "inputs");
    let many: BTreeSet<&String> = inputs.iter().filter(|i| i.contains("/many/")).collect();
    assert_eq!(many.len(), 10_000);
    assert_eq!(
        inputs.iter().filter(|i| i.contains("/many/")).count(),
        10_000
    );
}

#[test]
fn two_thousand_short_processes_are_all_recorded() {
    let p = Project::new();
    p.write("f", "x\n");
    let out = p.run_ok(&["sh", "-c", "for i in $(seq 2000); do cat f; done | wc -l"]);
    assert_eq!(text(&out.stdout).trim(), "2000");
    let job = p.json(&["show", "@1"]);
    let cats = job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pr| pr["argv"] == serde_json::json!(["cat", "f"]))
        .count();
    assert_eq!(cats, 2000);
    assert!(job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|pr| pr["detached"] == false));
}

/// roar's own programs started inside a traced job (a nested `roar`) are
/// not traced: known by the name they were started by.
#[test]
fn roars_own_programs_are_not_traced() {
    let p = Project::new();
    let inner = format!("{} log > /dev/null", roar_exe().display());
    p.run_ok(&["sh", "-c", &inner]);
    let job = p.json(&["show", "@1"]);
    let exes: Vec<String> = job["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pr| pr["exe"].as_str().unwrap().to_string())
        .collect();
    assert!(exes.iter().any(|e| e.ends_with("sh")), "{exes:?}");
    assert!(!exes.iter().any(|e| e.ends_with("/roar")), "{exes:?}");
}

/// The recorded exe is the file the kernel loaded, symlinks resolved: for a
/// program run through a symlink, its target; for a script, however it is
/// named, its interpreter (the shim takes exec's path only when it is
/// neither).
#[test]
fn the_exe_is_the_image_the_kernel_loaded() {
    let p = Project::new();
    p.write("f", "x\n");
    let cat = std::fs::canonicalize("/usr/bin/cat").unwrap();
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    std::os::unix::fs::symlink(&cat, p.file("lnk")).unwrap();
    p.write("scr", "#!/bin/sh\ncat \"$@\"\n");
    let exec_bits = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(p.file("scr"), exec_bits).unwrap();
    let (lnk, scr) = (p.file("lnk"), p.file("scr"));
    let script = format!(
        "{} f; {} f; {} {}",
        lnk.display(),
        scr.display(),
        lnk.display(),
        lnk.display()
    );
    p.run_ok(&["sh", "-c", &script]);
    let job = p.json(&["show", "@1"]);
    let procs = job["processes"].as_array().unwrap();
    let exe_of = |argv: Vec<String>| {
        let found = procs
            .iter()
            .find(|pr| pr["argv"] == serde_json::json!(argv))
            .unwrap_or_else(|| panic!("no process {argv:?} in {procs:?}"));
        found["exe"].as_str().unwrap().to_string()
    };
    let (lnk, scr) = (lnk.display().to_string(), scr.display().to_string());
    assert_eq!(exe_of(vec![lnk.clone(), "f".into()]), cat.to_str().unwrap());
    assert_eq!(
        exe_of(vec!["/bin/sh".into(), scr.clone(), "f".into()]),
        sh.to_str().unwrap()
    );
    assert_eq!(
        exe_of(vec![lnk.clone(), lnk.clone()]),
        cat.to_str().unwrap()
    );
}

/// A raw clone sharing the parent's memory (CLONE_VM, no atfork handlers)
/// finds the parent's connection state under a pid not its own: it must
/// leave it alone, so the parent stays traced.
#[test]
fn a_raw_clone_vm_child_leaves_its_parent_traced() {
    let p = Project::new();
    let src = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static int child(void *arg) {
    (void)arg;
    /* An unlink is sent at once: the child's hook tries to flush. */
    unlink("gone.txt");
    return 0;
}
int main(void) {
    close(open("gone.txt", O_WRONLY | O_CREAT, 0644));
    char *stack = malloc(1 << 20);
    pid_t pid = clone(child, stack + (1 << 20), CLONE_VM | SIGCHLD, NULL);
    if (pid < 0 || waitpid(pid, NULL, 0) != pid) return 1;
    int fd = open("after.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, "a\n", 2);
    close(fd);
    return 0;
}
"#;
    assert!(build_c(&p, "cv", src, &[]));
    p.run_ok(&["./cv"]);
    assert!(!p.file("gone.txt").exists());
    let job = p.json(&["show", "@1"]);
    assert_eq!(
        paths(&job, "outputs"),
        [p.file("after.txt").to_str().unwrap()],
        "{job}"
    );
}
