//! `roar register` against a real HTTP server on 127.0.0.1 that checks the
//! request shapes of docs/glaas-api.md, records every request, and can
//! answer 500, 401, or drop connections.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::sync::{Arc, Mutex};

use roar_tests::*;
use serde_json::{json, Value};

#[derive(Default)]
struct State {
    /// (method, path, body) of every request answered or dropped.
    requests: Vec<(String, String, Value)>,
    /// Answer this many requests with 500 before serving normally.
    fail_500: usize,
    /// Drop the connection of every request after this many.
    drop_after: Option<usize>,
    /// Answer this late.
    delay: std::time::Duration,
    sessions: HashMap<String, String>,
}

struct Server {
    url: String,
    state: Arc<Mutex<State>>,
}

fn respond(stream: &mut TcpStream, code: u16, body: &Value) {
    let text = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// What the server answers to a valid request, or 422 with the reason.
fn answer(
    st: &mut State,
    method: &str,
    path: &str,
    body: &Value,
    auth: Option<&str>,
) -> (u16, Value) {
    let is_hash = |v: &Value| {
        v.as_str()
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let bad = |why: &str| (422, json!({"detail": why}));
    let rest = path.strip_prefix("/api/v1/registration-sessions");
    match (method, path, rest) {
        ("GET", "/api/v1/auth/me", _) => match auth {
            Some("Bearer good-token") => (200, json!({"username": "alice"})),
            _ => (401, json!({"detail": "invalid token"})),
        },
        ("POST", _, Some("")) => {
            let Some(cid) = body["client_session_id"].as_str() else {
                return bad("no client_session_id");
            };
            if body["mode"] != "anonymous_public" && body["mode"] != "authenticated" {
                return bad("bad mode");
            }
            let n = st.sessions.len();
            let id = st
                .sessions
                .entry(cid.to_string())
                .or_insert_with(|| format!("rs-{n}"))
                .clone();
            (201, json!({"id": id}))
        }
        ("POST", _, Some(r)) => {
            let (_, tail) = r[1..].split_once('/').unwrap_or(("", ""));
            let ok = match tail {
                "artifacts/batch" => body["artifacts"].as_array().is_some_and(|a| {
                    a.iter()
                        .all(|x| is_hash(&x["hash"]) && x["size"].is_u64() && x["paths"].is_array())
                }),
                "jobs/batch" => body["jobs"].as_array().is_some_and(|j| {
                    j.iter().all(|x| {
                        x["uid"].is_string() && x["command"].is_array() && x["exit_status"].is_i64()
                    })
                }),
                "labels/batch" => body["labels"].as_array().is_some_and(|l| {
                    l.iter().all(|x| {
                        x["kind"].is_string() && x["labels"].is_object() && x["scope"].is_string()
                    })
                }),
                "finalize" => {
                    body["expected"]["jobs"].is_u64() && body["scope_request"].is_string()
                }
                t if t.starts_with("jobs/")
                    && (t.ends_with("/inputs") || t.ends_with("/outputs")) =>
                {
                    body["artifacts"]
                        .as_array()
                        .is_some_and(|a| a.iter().all(|x| is_hash(&x["hash"])))
                }
                _ => return (404, json!({"detail": "no such endpoint"})),
            };
            if !ok {
                return bad(&format!("malformed {tail}"));
            }
            if tail == "finalize" {
                (
                    200,
                    json!({"lineage_hash": "lh-1234", "url": "https://glaas.example/l/lh-1234"}),
                )
            } else {
                (200, json!({"accepted": true}))
            }
        }
        _ => (404, json!({"detail": "no such endpoint"})),
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut len, mut auth) = (0usize, None);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or(("", ""));
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "authorization" => auth = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = state.lock().unwrap();
    st.requests
        .push((method.clone(), path.clone(), body.clone()));
    if st.drop_after.is_some_and(|n| st.requests.len() > n) {
        return; // connection closed without an answer
    }
    if st.fail_500 > 0 {
        st.fail_500 -= 1;
        return respond(&mut stream, 500, &json!({"detail": "try again"}));
    }
    let (code, reply) = answer(&mut st, &method, &path, &body, auth.as_deref());
    let delay = st.delay;
    drop(st);
    std::thread::sleep(delay);
    respond(&mut stream, code, &reply);
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &shared);
            }
        });
        Server { url, state }
    }

    fn paths(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect()
    }
}

/// roar with the server as GLaaS and a private config dir.
fn roar(
    p: &Project,
    s: &Server,
    home: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut cmd = p.command(args);
    cmd.env("GLAAS_API_URL", &s.url)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("ROAR_GLAAS_TOKEN")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn pipeline(p: &Project) {
    p.write("in.csv", "a,b\n1,2\n");
    p.run_ok(&[
        "sh",
        "-c",
        "cat in.csv > mid.csv",
        "sh",
        "--token",
        "supersecrettoken1",
    ]);
    p.run_ok(&[
        "sh",
        "-c",
        "sort mid.csv > out.csv; echo wandbsecretvalue999 > /dev/null",
    ]);
    let out = p.roar(&[
        "label",
        "set",
        "job",
        "@2",
        "db=postgres://admin:pw123456@db.example/x",
        "acc=0.9",
    ]);
    assert!(out.status.success());
}

#[test]
fn register_sends_redacted_lineage_once_and_dry_run_sends_nothing() {
    let p = Project::new();
    let s = Server::start();
    let home = tempfile::tempdir().unwrap();
    pipeline(&p);
    let secret_env = [("WANDB_API_KEY", "wandbsecretvalue999")];

    let dry = roar(
        &p,
        &s,
        home.path(),
        &secret_env,
        &["register", "out.csv", "--dry-run"],
    );
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(s.paths().is_empty(), "a dry run sends nothing");
    let printed = text(&dry.stdout);
    assert!(
        printed.starts_with("POST /api/v1/registration-sessions\n"),
        "{printed}"
    );
    assert!(printed.contains("/finalize"));

    // No token, no terminal, no -y: refused.
    let refused = roar(&p, &s, home.path(), &secret_env, &["register", "out.csv"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(s.paths().is_empty());

    let out = roar(
        &p,
        &s,
        home.path(),
        &secret_env,
        &["register", "out.csv", "-y"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("lineage lh-1234"),
        "{}",
        text(&out.stdout)
    );
    let paths = s.paths();
    assert_eq!(paths[0], "POST /api/v1/registration-sessions");
    assert!(
        paths[1].ends_with("/artifacts/batch") && paths[2].ends_with("/jobs/batch"),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .filter(|p| p.ends_with("/inputs") || p.ends_with("/outputs"))
            .count()
            == 4,
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p.ends_with("/labels/batch")));
    assert!(paths.last().unwrap().ends_with("/finalize"));

    let bodies: String = s
        .state
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| r.2.to_string())
        .collect();
    for secret in ["supersecrettoken1", "pw123456", "wandbsecretvalue999"] {
        assert!(!bodies.contains(secret), "{secret} was sent");
        assert!(!printed.contains(secret), "{secret} printed by --dry-run");
    }
    assert!(bodies.contains("[REDACTED]"));
    let jobs = s.state.lock().unwrap().requests[2].2["jobs"].clone();
    assert_eq!(
        jobs.as_array().unwrap().len(),
        2,
        "the target and its upstream job"
    );

    // The same target again: nothing new to send.
    let before = s.paths().len();
    let again = roar(
        &p,
        &s,
        home.path(),
        &secret_env,
        &["register", "out.csv", "-y"],
    );
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("already registered"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(s.paths().len(), before);
}

#[test]
fn interrupted_registration_resumes_with_the_same_session() {
    let p = Project::new();
    let s = Server::start();
    let home = tempfile::tempdir().unwrap();
    pipeline(&p);
    // The session, the artifacts and the jobs get through; then the server
    // drops every connection.
    s.state.lock().unwrap().drop_after = Some(3);
    let out = roar(
        &p,
        &s,
        home.path(),
        &[],
        &["register", "dag", "current", "-y"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("failed after 4 attempts"), "{err}");
    let first_id = s.state.lock().unwrap().requests[0].2["client_session_id"].clone();

    {
        let mut st = s.state.lock().unwrap();
        st.drop_after = None;
        st.requests.clear();
        st.fail_500 = 1; // and one transient error, retried
    }
    let out = roar(
        &p,
        &s,
        home.path(),
        &[],
        &["register", "dag", "current", "-y"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = s.state.lock().unwrap();
    let sessions: Vec<&Value> = st
        .requests
        .iter()
        .filter(|r| r.1 == "/api/v1/registration-sessions")
        .map(|r| &r.2)
        .collect();
    assert!(
        sessions.iter().all(|b| b["client_session_id"] == first_id),
        "resumed with the same id"
    );
    assert!(
        !st.requests
            .iter()
            .any(|r| r.1.ends_with("/artifacts/batch") || r.1.ends_with("/jobs/batch")),
        "accepted items not sent again"
    );
    assert!(st.requests.last().unwrap().1.ends_with("/finalize"));
}

#[test]
fn auth_scopes_and_network_hygiene() {
    let p = Project::new();
    let s = Server::start();
    let home = tempfile::tempdir().unwrap();

    let out = roar(
        &p,
        &s,
        home.path(),
        &[("ROAR_GLAAS_TOKEN", "bad")],
        &["whoami"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("(401)") && err.contains("invalid token") && err.lines().count() == 1,
        "{err}"
    );

    let login = roar(
        &p,
        &s,
        home.path(),
        &[],
        &["login", "--token", "good-token"],
    );
    assert!(login.status.success());
    let file = home.path().join("roar/glaas-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let me = roar(&p, &s, home.path(), &[], &["whoami"]);
    assert!(
        text(&me.stdout).starts_with("alice on "),
        "{}",
        text(&me.stderr)
    );
    assert!(roar(&p, &s, home.path(), &[], &["logout"]).status.success());
    assert!(!file.exists());

    assert!(
        roar(&p, &s, home.path(), &[], &["scope", "use", "acme/mnist"])
            .status
            .success()
    );
    assert!(
        text(&roar(&p, &s, home.path(), &[], &["scope", "show"]).stdout).starts_with("acme/mnist;")
    );
    assert_eq!(
        roar(&p, &s, home.path(), &[], &["scope", "use", "no such"])
            .status
            .code(),
        Some(2)
    );
    p.run_ok(&["sh", "-c", "echo x > y.txt"]);
    let private = roar(&p, &s, home.path(), &[], &["register", "@1", "-y"]);
    assert_eq!(private.status.code(), Some(2));
    assert!(text(&private.stderr).contains("needs an account"));

    let far = roar(
        &p,
        &s,
        home.path(),
        &[("GLAAS_API_URL", "http://example.com")],
        &["whoami"],
    );
    let _ = far; // no token: refused before any request
    let mut cmd = p.command(&["scope", "use", "public"]);
    assert!(cmd
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap()
        .status
        .success());
    let plain = roar(
        &p,
        &s,
        home.path(),
        &[("GLAAS_API_URL", "http://example.com")],
        &["register", "@1", "-y"],
    );
    assert_eq!(plain.status.code(), Some(2));
    assert!(
        text(&plain.stderr).contains("refusing plain http://"),
        "{}",
        text(&plain.stderr)
    );
    assert!(s.paths().iter().all(|p| p == "GET /api/v1/auth/me"));
}
