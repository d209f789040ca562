//! Telemetry end to end, against a real HTTP server on 127.0.0.1: which
//! milestones queue an event, what is posted and when it is deleted, that
//! nothing private enters a payload, every opt-out, and that a hung
//! endpoint never slows a foreground command.
//!
//! Every roar here runs with a cleared environment: its own HOME,
//! XDG_CONFIG_HOME and XDG_CACHE_HOME, and no CI or test-runner variables
//! (CI itself runs with CI=true, and cargo test sets CARGO_MANIFEST_DIR,
//! both of which turn telemetry off).

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roar_tests::{roar_exe, text};
use serde_json::Value;

// ---- the published contract, restated independently of the code ----

const TOP_LEVEL: [&str; 14] = [
    "payload_schema_version",
    "stats_schema_version",
    "event_id",
    "install_id",
    "sequence",
    "first_seen",
    "trigger",
    "trigger_ts",
    "counters_as_of",
    "version",
    "platform",
    "subcommand_counts",
    "tracer_selections",
    "feature_capabilities",
];
const SUBCOMMANDS: [&str; 14] = [
    "run", "build", "init", "reset", "register", "show", "dag", "log", "status", "get", "put",
    "inputs", "diff", "lineage",
];
const TRACERS: [&str; 7] = [
    "preload", "ptrace", "ebpf", "native", "auto", "disabled", "unknown",
];
const CI_VARS: [&str; 10] = [
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "TRAVIS",
    "APPVEYOR",
    "TEAMCITY_VERSION",
    "JENKINS_URL",
    "TF_BUILD",
];
const PATH: &str = "/api/v1/telemetry/roar";
/// Generous: a foreground command that waited for the network would take
/// the uploader's timeout (many seconds) or the hung server's 30 s.
const PROMPT: Duration = Duration::from_secs(2);

// ---- a small HTTP/1.1 server ----

#[derive(Clone, Copy)]
enum Mode {
    /// `204 No Content`, after an optional delay.
    NoContent(Duration),
    ServerError,
    /// Reads the request and never answers (for 30 s).
    Hang,
}

struct Request {
    method: String,
    path: String,
    content_type: String,
    body: Vec<u8>,
}

struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve(stream, mode, &seen));
            }
        });
        Server { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{PATH}", self.port)
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn bodies(&self) -> Vec<Vec<u8>> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }
}

fn serve(stream: TcpStream, mode: Mode, seen: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    seen.lock().unwrap().push(Request {
        method,
        path,
        content_type,
        body,
    });
    let mut stream = stream;
    let reply: &[u8] = match mode {
        Mode::NoContent(delay) => {
            std::thread::sleep(delay);
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        }
        Mode::ServerError => {
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        Mode::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
    };
    let _ = stream.write_all(reply);
}

/// A URL nothing listens on: connections are refused.
fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{PATH}")
}

// ---- a user's machine: HOME, XDG dirs and a project folder ----

struct Sandbox {
    root: tempfile::TempDir,
    project: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox::named("proj")
    }

    fn named(project: &str) -> Sandbox {
        let root = tempfile::Builder::new()
            .prefix("roar-telemetry-")
            .tempdir()
            .expect("temp dir");
        let project = root.path().join(project);
        for d in [root.path().join("home"), project.clone()] {
            std::fs::create_dir_all(d).unwrap();
        }
        Sandbox { root, project }
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }
    fn config_home(&self) -> PathBuf {
        self.root.path().join("config")
    }
    fn cache_home(&self) -> PathBuf {
        self.root.path().join("cache")
    }
    fn dir(&self) -> PathBuf {
        self.cache_home().join("roar/telemetry")
    }
    fn queue_dir(&self) -> PathBuf {
        self.dir().join("queue")
    }
    fn stats_path(&self) -> PathBuf {
        self.dir().join("stats.json")
    }
    fn global_config(&self) -> PathBuf {
        self.config_home().join("roar/global.toml")
    }

    /// roar with nothing from the test's own environment but PATH (and
    /// TMPDIR): no CI, no test runner, no DO_NOT_TRACK, no tracing.
    fn command_with(&self, exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let path: Vec<String> = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|d| !d.contains("/osmo/"))
            .map(str::to_string)
            .collect();
        let mut cmd = Command::new(exe);
        cmd.env_clear()
            .env("PATH", path.join(":"))
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("XDG_CACHE_HOME", self.cache_home());
        if let Some(tmp) = std::env::var_os("TMPDIR") {
            cmd.env("TMPDIR", tmp);
        }
        cmd.envs(env.iter().copied())
            .args(args)
            .current_dir(&self.project)
            .stdin(Stdio::null());
        cmd
    }

    fn roar_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command_with(&roar_exe(), args, env)
            .output()
            .expect("spawn roar")
    }

    fn roar(&self, args: &[&str]) -> Output {
        self.roar_env(args, &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_env(args, &[])
    }

    fn ok_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.roar_env(args, env);
        assert!(
            out.status.success(),
            "roar {args:?} failed ({:?}): {}",
            out.status,
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn set_endpoint(&self, url: &str) {
        self.ok(&["telemetry", "--endpoint", url]);
    }

    fn status_json(&self, env: &[(&str, &str)]) -> Value {
        let out = self.ok_env(&["telemetry", "--status", "--json"], env);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// The queued events, oldest first, as (file, bytes).
    fn queued(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(self.queue_dir()) {
            Ok(d) => d
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
            .into_iter()
            .filter_map(|f| Some((f.clone(), std::fs::read(&f).ok()?)))
            .collect()
    }

    fn queued_json(&self) -> Vec<Value> {
        self.queued()
            .iter()
            .map(|(f, b)| {
                serde_json::from_slice(b)
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", f.display()))
            })
            .collect()
    }

    fn triggers(&self) -> Vec<String> {
        self.queued_json()
            .iter()
            .map(|v| v["trigger"].as_str().expect("trigger").to_string())
            .collect()
    }

    /// Waits until no uploader started in this sandbox's project runs (a
    /// detached one reads the settings again before each post, so a test
    /// that changes them lets those finish first).
    fn wait_for_uploaders(&self) {
        let project = self.project.canonicalize().unwrap();
        wait_for(
            "the detached uploaders to exit",
            Duration::from_secs(30),
            || !uploader_running_in(&project),
        );
    }

    /// Runs the uploader in the foreground and waits for it.
    fn upload_now(&self, env: &[(&str, &str)]) {
        let out = self.roar_env(&["__telemetry-upload"], env);
        assert!(out.status.success(), "uploader: {}", text(&out.stderr));
    }
}

fn uploader_running_in(cwd: &Path) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let p = p.path();
        std::fs::read(p.join("cmdline"))
            .is_ok_and(|c| c.windows(18).any(|w| w == b"__telemetry-upload"))
            && std::fs::read_link(p.join("cwd")).is_ok_and(|d| d == cwd)
    })
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The payload is exactly the contract's fields, of the contract's shapes.
fn assert_allowlisted(v: &Value) {
    let keys: BTreeSet<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, TOP_LEVEL.into_iter().collect(), "{v}");
    for k in v["subcommand_counts"].as_object().unwrap().keys() {
        let run_outcome =
            k.starts_with("run_") && k.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        assert!(
            SUBCOMMANDS.contains(&k.as_str()) || run_outcome,
            "counter {k}"
        );
    }
    for k in v["tracer_selections"].as_object().unwrap().keys() {
        assert!(TRACERS.contains(&k.as_str()), "tracer {k}");
    }
    for (k, b) in v["feature_capabilities"].as_object().unwrap() {
        assert!(b.is_boolean(), "capability {k} = {b}");
    }
    let platform: BTreeSet<&str> = v["platform"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        platform,
        ["arch", "containerized", "os"].into_iter().collect()
    );
    assert!(["linux", "macos", "windows", "other"].contains(&v["platform"]["os"].as_str().unwrap()));
}

/// Runs `roar init` in the sandbox's project; asserts success.
fn init(sb: &Sandbox) {
    sb.ok(&["init"]);
}

// ---- milestones, queue and upload ----

#[test]
fn milestones_are_posted_and_deleted_on_204() {
    let sb = Sandbox::new();
    let server = Server::start(Mode::NoContent(Duration::ZERO));
    sb.set_endpoint(&server.url());
    assert!(
        sb.queued().is_empty(),
        "roar telemetry itself queues nothing"
    );
    assert!(
        !sb.stats_path().exists(),
        "roar telemetry itself counts nothing"
    );

    init(&sb);
    // The detached uploader posts both events and deletes them.
    wait_for(
        "two posts and an empty queue",
        Duration::from_secs(10),
        || server.count() == 2 && sb.queued().is_empty(),
    );
    {
        let reqs = server.requests.lock().unwrap();
        let triggers: Vec<String> = reqs
            .iter()
            .map(|r| {
                assert_eq!(r.method, "POST");
                assert_eq!(r.path, PATH);
                assert_eq!(r.content_type, "application/json");
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert_allowlisted(&v);
                v["trigger"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(triggers, ["first_seen_for_install_id", "init"]);
    }

    // Commands that are no milestone queue nothing (the foreground writes
    // the file before it exits, so "nothing queued now" is final).
    sb.ok(&["status"]);
    sb.ok(&["log"]);
    assert!(sb.queued().is_empty());
    sb.ok(&["reset"]);
    wait_for("the reset event", Duration::from_secs(10), || {
        server.count() == 3 && sb.queued().is_empty()
    });
    let last: Value = serde_json::from_slice(&server.bodies()[2]).unwrap();
    assert_eq!(last["trigger"], "reset");
    assert_eq!(last["sequence"], 3);
}

#[test]
fn milestones_over_an_install() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url()); // events stay queued, to be read here
    init(&sb);
    assert_eq!(sb.triggers(), ["first_seen_for_install_id", "init"]);
    sb.ok(&["status"]);
    sb.ok(&["log"]);
    sb.ok(&["telemetry", "--status"]);
    let failed = sb.roar(&["run", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(3));
    assert_eq!(
        sb.triggers().len(),
        2,
        "no milestone yet: {:?}",
        sb.triggers()
    );
    for _ in 0..4 {
        sb.ok(&["run", "-q", "true"]);
    }
    sb.ok(&["build", "-q", "true"]);
    sb.ok(&["reset"]);
    assert_eq!(
        sb.triggers(),
        [
            "first_seen_for_install_id",
            "init",
            "first_successful_run",
            "second_successful_run",
            "third_successful_run",
            "reset"
        ]
    );

    // An upgrade: the stats say an older roar ran last.
    let mut stats: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.stats_path()).unwrap()).unwrap();
    stats["last_version"] = "0.0.1".into();
    std::fs::write(sb.stats_path(), stats.to_string()).unwrap();
    sb.ok(&["status"]);
    sb.ok(&["status"]);
    let all = sb.queued_json();
    assert_eq!(all.last().unwrap()["trigger"], "first_seen_for_version");
    assert_eq!(all.len(), 7);

    for (i, v) in all.iter().enumerate() {
        assert_allowlisted(v);
        assert_eq!(v["sequence"], i as u64 + 1);
        assert_eq!(v["install_id"], all[0]["install_id"]);
        assert_eq!(v["first_seen"], all[0]["first_seen"]);
    }
    let ids: HashSet<&str> = all
        .iter()
        .map(|v| v["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), all.len(), "a fresh event id per event");
    // The counters as of the last event (the first `status` after the
    // upgrade); stats.json has the later one too.
    let counts = &all.last().unwrap()["subcommand_counts"];
    assert_eq!(counts["init"], 1);
    assert_eq!(counts["status"], 2);
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.stats_path()).unwrap()).unwrap();
    assert_eq!(stats["subcommand_counts"]["status"], 3);
    assert_eq!(counts["log"], 1);
    assert_eq!(counts["run"], 5);
    assert_eq!(counts["run_success"], 4);
    assert_eq!(counts["run_failed"], 1);
    assert_eq!(counts["build"], 1);
    assert_eq!(counts["reset"], 1);
    assert_eq!(counts.get("telemetry"), None);
    assert_eq!(all.last().unwrap()["tracer_selections"]["preload"], 6);
}

#[test]
fn failed_uploads_keep_the_event() {
    // 500: kept.
    let sb = Sandbox::new();
    let failing = Server::start(Mode::ServerError);
    sb.set_endpoint(&failing.url());
    init(&sb);
    wait_for(
        "the detached uploader's attempt",
        Duration::from_secs(10),
        || failing.count() >= 1,
    );
    let before = failing.count();
    wait_for(
        "a foreground upload attempt",
        Duration::from_secs(10),
        || {
            // It leaves at once while the detached one still holds the lock.
            sb.upload_now(&[]);
            failing.count() > before
        },
    );
    assert_eq!(sb.queued().len(), 2, "a 500 deletes nothing");

    // Connection refused: kept.
    sb.set_endpoint(&refused_url());
    sb.upload_now(&[]);
    assert_eq!(
        sb.queued().len(),
        2,
        "an unreachable endpoint deletes nothing"
    );

    // The next uploader that gets a 204 sends them.
    let working = Server::start(Mode::NoContent(Duration::ZERO));
    sb.set_endpoint(&working.url());
    sb.upload_now(&[]);
    assert!(sb.queued().is_empty());
    assert_eq!(working.count(), 2);
}

#[test]
fn a_hung_endpoint_never_slows_the_foreground() {
    let sb = Sandbox::new();
    let server = Server::start(Mode::Hang);
    sb.set_endpoint(&server.url());
    let timed = |args: &[&str]| {
        let start = Instant::now();
        let out = sb.roar(args);
        let took = start.elapsed();
        assert!(
            took < PROMPT,
            "roar {args:?} took {took:?} with the endpoint hung"
        );
        out
    };
    timed(&["init"]);
    // An uploader is now stuck on the server; everything else stays prompt.
    wait_for("the stuck upload", Duration::from_secs(10), || {
        server.count() >= 1
    });
    let url = server.url();
    for args in [
        &["run", "-q", "true"][..],
        &["run", "-q", "true"],
        &["run", "-q", "sh", "-c", "exit 1"],
        &["build", "-q", "true"],
        &["status"],
        &["log"],
        &["reset"],
        &["telemetry", "--status"],
        &["telemetry", "--print"],
        &["telemetry", "--endpoint", &url],
    ] {
        timed(args);
    }
    assert!(
        !sb.queued().is_empty(),
        "the events wait for a working endpoint"
    );
}

#[test]
fn print_shows_the_bytes_the_uploader_posts() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    init(&sb);
    let queued = sb.queued();
    assert_eq!(queued.len(), 2);
    let stats_before = std::fs::read(sb.stats_path()).unwrap();

    let out = sb.roar(&["telemetry", "--print"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let preview: Value = serde_json::from_str(&printed).expect("--print is JSON");
    assert_allowlisted(&preview);
    assert_eq!(preview["trigger"], "preview");
    assert_eq!(sb.queued().len(), 2, "a preview is never queued");
    assert_eq!(std::fs::read(sb.stats_path()).unwrap(), stats_before);

    let server = Server::start(Mode::NoContent(Duration::ZERO));
    sb.set_endpoint(&server.url());
    wait_for("the upload", Duration::from_secs(10), || {
        sb.upload_now(&[]);
        sb.queued().is_empty()
    });
    let posted = server.bodies();
    assert_eq!(posted.len(), 2);
    for ((_, file), body) in queued.iter().zip(&posted) {
        assert_eq!(file, body, "the uploader posts the queued bytes unchanged");
    }

    // The init event and the preview were built from the same state: once
    // the fields that name the event itself (its id, trigger, time and
    // sequence number) are the same, they are the same bytes.
    let init_body = text(&posted[1]);
    let init: Value = serde_json::from_str(&init_body).unwrap();
    let mut same = printed.clone();
    for key in ["event_id", "trigger", "trigger_ts", "sequence"] {
        let from = format!("\"{key}\": {}", preview[key]);
        let to = format!("\"{key}\": {}", init[key]);
        assert_eq!(same.matches(&from).count(), 1, "{key} in {printed}");
        same = same.replacen(&from, &to, 1);
    }
    assert_eq!(same, init_body);
}

#[test]
fn nothing_private_reaches_a_payload() {
    let sb = Sandbox::named("proj-zebrafinch-4471");
    sb.set_endpoint(&refused_url());
    init(&sb);
    std::fs::write(sb.project.join("okapi-7723.csv"), "a,b\n1,2\n").unwrap();
    let env = [
        ("ROAR_TEST_SECRET", "narwhal-5580"),
        ("GLAAS_TOKEN", "tok-capybara-6612"),
    ];
    let script = "cat okapi-7723.csv > out-quetzal-8812.txt; echo ibis-3306-output; \
                  echo \"$ROAR_TEST_SECRET\" >&2";
    for _ in 0..3 {
        sb.ok_env(&["run", "sh", "-c", script, "--marmoset=9931"], &env);
    }
    let _ = sb.roar_env(&["run", "sh", "-c", "exit 7", "--pangolin=2207"], &env);
    let _ = sb.roar_env(&["run", "no-such-program-tapir-5147"], &env);
    sb.ok(&["label", "set", "job", "@1", "note=axolotl-2290"]);
    sb.ok(&["show", "out-quetzal-8812.txt"]);
    sb.ok(&["lineage", "out-quetzal-8812.txt"]);
    sb.ok(&["dag"]);
    let log: Value = serde_json::from_str(&sb.ok(&["log", "--json"])).expect("log --json");
    sb.ok(&["reset"]);
    let hash = roar_tests::b3(&sb.project.join("out-quetzal-8812.txt"));

    let mut needles: Vec<String> = [
        "zebrafinch-4471",
        "okapi-7723",
        "quetzal-8812",
        "marmoset",
        "9931",
        "pangolin",
        "tapir-5147",
        "narwhal-5580",
        "capybara-6612",
        "ibis-3306",
        "axolotl-2290",
        "sh -c",
        "ROAR_TEST_SECRET",
    ]
    .map(String::from)
    .to_vec();
    needles.push(hash[..16].to_string());
    needles.push(sb.root.path().display().to_string());
    needles.push(sb.project.display().to_string());
    let job_ids = serde_json::to_string(&log).unwrap();
    for uid in job_ids
        .split('"')
        .filter(|s| s.len() >= 12 && s.chars().all(|c| c.is_ascii_hexdigit()))
    {
        needles.push(uid.to_string());
    }
    for who in [
        std::fs::read_to_string("/etc/hostname").unwrap_or_default(),
        std::env::var("USER").unwrap_or_default(),
        std::env::var("HOME").unwrap_or_default(),
    ] {
        let who = who.trim();
        if who.len() >= 4 {
            needles.push(who.to_string());
        }
    }

    let mut payloads: Vec<(String, Vec<u8>)> = sb
        .queued()
        .into_iter()
        .map(|(f, b)| (f.display().to_string(), b))
        .collect();
    assert!(payloads.len() >= 5, "{} events", payloads.len());
    payloads.push(("--print".into(), sb.roar(&["telemetry", "--print"]).stdout));
    for (name, bytes) in &payloads {
        let body = text(bytes);
        for needle in &needles {
            assert!(
                !body.contains(needle.as_str()),
                "{needle:?} leaked into {name}:\n{body}"
            );
        }
        // Stronger: no free-form text at all. Every string in a payload is
        // an id, a timestamp, or a word from the contract's vocabulary.
        let v: Value = serde_json::from_slice(bytes).unwrap();
        assert_allowlisted(&v);
        let mut strings = Vec::new();
        collect_strings(&v, &mut strings);
        for s in strings {
            assert!(harmless(&s), "{s:?} in {name}");
        }
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

fn harmless(s: &str) -> bool {
    let uuid = s.len() == 36
        && s.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    let timestamp = s.len() == 20
        && s.ends_with('Z')
        && s.chars().all(|c| c.is_ascii_digit() || "-T:Z".contains(c));
    let version = s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c));
    let vocabulary = [
        "first_seen_for_install_id",
        "first_seen_for_version",
        "first_successful_run",
        "second_successful_run",
        "third_successful_run",
        "init",
        "reset",
        "register",
        "preview",
        "linux",
        "macos",
        "windows",
        "other",
        "x86_64",
        "arm64",
        "x86",
        "arm",
        "riscv64",
    ];
    uuid || timestamp || version || vocabulary.contains(&s)
}

// ---- opt-outs ----

/// With `env`, a whole session of commands leaves no trace: no stats, no
/// queue; and `--status` says why.
fn assert_silent(env: &[(&str, &str)], reason: &str) {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    sb.ok_env(&["init"], env);
    sb.ok_env(&["run", "-q", "true"], env);
    sb.ok_env(&["reset"], env);
    assert!(
        sb.queued().is_empty(),
        "{env:?}: queued {:?}",
        sb.triggers()
    );
    assert!(!sb.stats_path().exists(), "{env:?}: counted");
    let status = sb.status_json(env);
    assert_eq!(status["enabled"], false, "{env:?}: {status}");
    let why = status["reason"].as_str().unwrap_or("");
    assert!(why.contains(reason), "{env:?}: {why:?} lacks {reason:?}");
}

#[test]
fn environment_opt_outs() {
    assert_silent(&[("DO_NOT_TRACK", "1")], "DO_NOT_TRACK");
    assert_silent(&[("ROAR_NO_TELEMETRY", "1")], "ROAR_NO_TELEMETRY");
    assert_silent(
        &[("PYTEST_CURRENT_TEST", "t.py::test (call)")],
        "test runner",
    );
    assert_silent(&[("CARGO_MANIFEST_DIR", "/src/x")], "test runner");
    assert_silent(&[("RAY_RAYLET_PID", "4242")], "Ray");
    let osmo_path = format!(
        "{}:/osmo/usr/bin",
        std::env::var("PATH").unwrap_or_default()
    );
    assert_silent(&[("PATH", &osmo_path)], "OSMO");
}

#[test]
fn ci_suppression() {
    for var in CI_VARS {
        assert_silent(&[(var, "true")], var);
    }
    // CI=false is not CI.
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    sb.ok_env(&["init"], &[("CI", "false")]);
    assert_eq!(sb.triggers(), ["first_seen_for_install_id", "init"]);
}

#[test]
fn a_roar_inside_a_traced_job_counts_nothing() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    init(&sb);
    let roar = roar_exe();
    // The traced command runs roar twice; only the outer `roar run` counts.
    sb.ok(&[
        "run",
        "-q",
        "sh",
        "-c",
        "\"$0\" log >/dev/null && \"$0\" status >/dev/null",
        roar.to_str().unwrap(),
    ]);
    assert_eq!(
        sb.triggers(),
        ["first_seen_for_install_id", "init", "first_successful_run"]
    );
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.stats_path()).unwrap()).unwrap();
    let counts = &stats["subcommand_counts"];
    assert_eq!(counts["run"], 1);
    assert_eq!(counts.get("log"), None);
    assert_eq!(counts.get("status"), None);
}

#[test]
fn disable_wipes_persists_and_propagates() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    init(&sb);
    assert_eq!(sb.queued().len(), 2);
    let out = sb.ok(&["telemetry", "--disable"]);
    assert!(out.contains("deleted 2 queued event(s)"), "{out}");
    assert!(sb.queued().is_empty(), "--disable wipes the queue");
    let toml = std::fs::read_to_string(sb.global_config()).unwrap();
    assert!(toml.contains("enabled = false"), "{toml}");

    let stats = std::fs::read(sb.stats_path()).unwrap();
    sb.ok(&["run", "-q", "true"]);
    sb.ok(&["reset"]);
    assert!(sb.queued().is_empty());
    assert_eq!(
        std::fs::read(sb.stats_path()).unwrap(),
        stats,
        "nothing counted"
    );
    let status = sb.status_json(&[]);
    assert_eq!(status["enabled"], false);
    assert!(status["reason"].as_str().unwrap().contains("global.toml"));

    // Traced jobs get ROAR_NO_TELEMETRY=1, for any roar they start.
    sb.ok(&[
        "run",
        "-q",
        "sh",
        "-c",
        "echo \"${ROAR_NO_TELEMETRY:-unset}\" > seen.txt",
    ]);
    assert_eq!(
        std::fs::read_to_string(sb.project.join("seen.txt")).unwrap(),
        "1\n"
    );

    // A reinstall (another binary elsewhere) and an upgrade (the cache and
    // its version record gone) keep it off: it lives in the user's config.
    let elsewhere = sb.root.path().join("reinstalled/bin");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(roar_exe(), elsewhere.join("roar")).unwrap();
    std::fs::remove_dir_all(sb.cache_home()).unwrap();
    let out = sb
        .command_with(
            &elsewhere.join("roar"),
            &["telemetry", "--status", "--json"],
            &[],
        )
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["enabled"], false);
    sb.ok(&["status"]);
    assert!(!sb.stats_path().exists() && sb.queued().is_empty());

    // --enable turns it back on.
    sb.ok(&["telemetry", "--enable"]);
    sb.ok(&["reset"]);
    assert_eq!(sb.triggers(), ["first_seen_for_install_id", "reset"]);
    sb.ok(&[
        "run",
        "-q",
        "sh",
        "-c",
        "echo \"${ROAR_NO_TELEMETRY:-unset}\" > seen.txt",
    ]);
    assert_eq!(
        std::fs::read_to_string(sb.project.join("seen.txt")).unwrap(),
        "unset\n"
    );
}

#[test]
fn off_means_the_uploader_contacts_no_one() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    init(&sb);
    sb.wait_for_uploaders();
    let server = Server::start(Mode::NoContent(Duration::ZERO));
    sb.set_endpoint(&server.url());
    for env in [
        &[("DO_NOT_TRACK", "1")][..],
        &[("ROAR_NO_TELEMETRY", "1")],
        &[("CI", "true")],
        &[("ROAR_JOB", "0123456789abcdef")],
    ] {
        sb.upload_now(env);
    }
    // A project that turns telemetry off.
    let config = sb.project.join(".roar/config.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{original}\n[telemetry]\nenabled = false\n"),
    )
    .unwrap();
    sb.upload_now(&[]);
    assert_eq!(sb.status_json(&[])["enabled"], false);
    std::fs::write(&config, original).unwrap();
    assert_eq!(server.count(), 0, "an uploader that is off contacts no one");
    assert_eq!(sb.queued().len(), 2);
}

#[test]
fn an_empty_endpoint_keeps_counting_and_sends_nothing() {
    let sb = Sandbox::new();
    let out = sb.ok(&["telemetry", "--endpoint", ""]);
    assert!(out.contains("forbidden"), "{out}");
    init(&sb);
    sb.ok(&["run", "-q", "true"]);
    assert!(sb.queued().is_empty());
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.stats_path()).unwrap()).unwrap();
    assert_eq!(stats["subcommand_counts"]["init"], 1);
    assert_eq!(stats["subcommand_counts"]["run_success"], 1);
    let status = sb.status_json(&[]);
    assert_eq!(status["enabled"], true);
    assert_eq!(status["uploads"], false);
    assert_eq!(status["endpoint"], Value::Null);
    let print = sb.roar(&["telemetry", "--print"]);
    let v: Value = serde_json::from_slice(&print.stdout).unwrap();
    assert_eq!(v["subcommand_counts"]["run"], 1);
    assert!(text(&print.stderr).contains("nothing is uploaded"));
}

#[test]
fn xdg_directories_are_honoured() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    init(&sb);
    assert!(sb.global_config().is_file());
    assert!(sb.stats_path().is_file());
    assert_eq!(sb.queued().len(), 2);
    assert!(!sb.home().join(".config").exists() && !sb.home().join(".cache").exists());
    let status = sb.status_json(&[]);
    assert_eq!(
        status["global_config"],
        sb.global_config().display().to_string()
    );
    assert_eq!(status["queue"], sb.queue_dir().display().to_string());

    // Unset (or relative) XDG variables fall back to ~/.config and ~/.cache.
    let sb = Sandbox::new();
    let fallback = |args: &[&str]| {
        let mut cmd = sb.command_with(&roar_exe(), args, &[("XDG_CACHE_HOME", "relative/cache")]);
        cmd.env_remove("XDG_CONFIG_HOME");
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    fallback(&["telemetry", "--endpoint", &refused_url()]);
    fallback(&["init"]);
    assert!(sb.home().join(".config/roar/global.toml").is_file());
    assert!(sb.home().join(".cache/roar/telemetry/stats.json").is_file());
    assert!(!sb.config_home().exists() && !sb.cache_home().exists());
    assert!(!sb.project.join("relative").exists());
}

#[test]
fn two_uploaders_post_each_event_once() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    init(&sb);
    for _ in 0..4 {
        sb.ok(&["reset"]);
    }
    let queued: Vec<String> = sb
        .queued_json()
        .iter()
        .map(|v| v["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(queued.len(), 6);
    sb.wait_for_uploaders();

    // Slow answers, so that the uploaders overlap.
    let server = Server::start(Mode::NoContent(Duration::from_millis(150)));
    sb.set_endpoint(&server.url());
    let mut uploaders: Vec<_> = (0..3)
        .map(|_| {
            sb.command_with(&roar_exe(), &["__telemetry-upload"], &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for u in &mut uploaders {
        assert!(u.wait().unwrap().success());
    }
    wait_for("an empty queue", Duration::from_secs(10), || {
        sb.queued().is_empty()
    });
    let mut posted: Vec<String> = server
        .bodies()
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_slice(b).unwrap();
            v["event_id"].as_str().unwrap().to_string()
        })
        .collect();
    posted.sort();
    let mut expected = queued;
    expected.sort();
    assert_eq!(posted, expected, "each event posted exactly once");
}

#[test]
fn register_is_a_milestone_unless_dry_run() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    init(&sb);
    sb.ok(&["run", "-q", "true"]);
    // No GLaaS server answers: the attempt is what counts.
    let glaas = refused_url().replace(PATH, "");
    let env = [("GLAAS_API_URL", glaas.as_str())];
    let _ = sb.roar_env(&["register", "--dry-run", "@1"], &env);
    assert_eq!(
        sb.triggers(),
        ["first_seen_for_install_id", "init", "first_successful_run"]
    );
    let _ = sb.roar_env(&["register", "-y", "@1"], &env);
    let all = sb.queued_json();
    let last = all.last().unwrap();
    assert_eq!(last["trigger"], "register");
    assert_eq!(last["subcommand_counts"]["register"], 2);
}

#[test]
fn the_default_endpoint_follows_the_glaas_server() {
    let sb = Sandbox::new();
    let server = Server::start(Mode::NoContent(Duration::ZERO));
    let glaas = server.url().replace(PATH, "");
    let env = [("GLAAS_API_URL", glaas.as_str())];
    let status = sb.status_json(&env);
    assert_eq!(status["endpoint"], server.url());
    sb.ok_env(&["init"], &env);
    wait_for("two posts", Duration::from_secs(10), || {
        server.count() == 2 && sb.queued().is_empty()
    });
    assert!(server
        .requests
        .lock()
        .unwrap()
        .iter()
        .all(|r| r.path == PATH));
}

// ---- the command itself ----

#[test]
fn status_says_what_and_why() {
    let sb = Sandbox::new();
    sb.set_endpoint(&refused_url());
    let out = sb.ok(&["telemetry"]);
    assert!(out.contains("telemetry:      on"), "{out}");
    assert!(out.contains("install id:     none yet"), "{out}");
    init(&sb);
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.stats_path()).unwrap()).unwrap();
    let out = sb.ok(&["telemetry", "--status"]);
    for want in [
        format!("install id:     {}", stats["install_id"].as_str().unwrap()),
        "queued events:  2".to_string(),
        format!("global config:  {}", sb.global_config().display()),
        format!("queue:          {}", sb.queue_dir().display()),
        format!("stats:          {}", sb.stats_path().display()),
        "project config:".to_string(),
        PATH.to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} missing in:\n{out}");
    }
    let off = sb.ok_env(&["telemetry", "--status"], &[("DO_NOT_TRACK", "1")]);
    assert!(
        off.contains("telemetry:      off (DO_NOT_TRACK is set)"),
        "{off}"
    );
}

#[test]
fn bad_input_is_one_line_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.set_endpoint("https://telemetry.example.org/in");
    let before = std::fs::read_to_string(sb.global_config()).unwrap();
    for url in ["ftp://example.org/t", "http://example.org/t", "not a url"] {
        let out = sb.roar(&["telemetry", "--endpoint", url]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("roar: "), "{err}");
    }
    assert_eq!(std::fs::read_to_string(sb.global_config()).unwrap(), before);
    let out = sb.roar(&["telemetry", "--enable", "--disable"]);
    assert_eq!(out.status.code(), Some(2));

    // An unreadable global config: telemetry stays off (it may hold an
    // opt-out), commands still work, and changing it says what to fix.
    std::fs::write(sb.global_config(), "[telemetry\n").unwrap();
    init(&sb);
    assert!(sb.queued().is_empty() && !sb.stats_path().exists());
    let out = sb.roar(&["telemetry", "--disable"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("global.toml"), "{err}");
}
