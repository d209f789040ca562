//! The collector facing bad peers: undecodable and oversized frames are
//! dropped, a protocol version mismatch is reported, the job still lands.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use roar_protocol::{access, encode, preamble, Bytes, Hello, JobMeta, Message, Reply};
use roar_tests::*;

fn send(stream: &mut UnixStream, msg: &Message) {
    stream.write_all(&encode(msg).unwrap()).unwrap();
}

/// A one-job collector for `p`, ready to accept; its socket lives in the
/// returned folder.
fn start_collector(p: &Project, stderr: Stdio) -> (Child, PathBuf, tempfile::TempDir) {
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("c.sock");
    let mut collector = clean(&mut Command::new(bin_dir().join("roar-collector")))
        .arg("--socket")
        .arg(&socket)
        .arg("--db")
        .arg(p.file(".roar/roar.db"))
        .arg("--project")
        .arg(p.path())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(collector.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");
    (collector, socket, socket_dir)
}

#[test]
fn bad_frames_are_dropped_and_version_mismatch_reported() {
    let p = Project::new();
    p.write("input.txt", "data");
    let (collector, socket, _dir) = start_collector(&p, Stdio::piped());

    // A peer from another protocol version.
    let mut old = UnixStream::connect(&socket).unwrap();
    let mut pre = preamble();
    pre[4..].copy_from_slice(&999u32.to_le_bytes());
    old.write_all(&pre).unwrap();
    drop(old);

    // A traced process sending garbage and an oversized frame among good ones.
    let input = p.file("input.txt");
    let mut s = UnixStream::connect(&socket).unwrap();
    s.write_all(&preamble()).unwrap();
    send(
        &mut s,
        &Message::Hello(Hello {
            pid: 4242,
            ppid: 1,
            job_token: Bytes::borrowed(b"tok"),
            exe: Bytes::borrowed(b"/bin/fake"),
            argv: vec![Bytes::borrowed(b"fake")],
            cwd: Bytes::borrowed(p.path().to_str().unwrap().as_bytes()),
            t_ns: 1,
        }),
    );
    s.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff]).unwrap();
    let huge = roar_protocol::MAX_FRAME_LEN as u32 + 10;
    s.write_all(&huge.to_le_bytes()).unwrap();
    s.write_all(&vec![0u8; huge as usize]).unwrap();
    send(
        &mut s,
        &Message::Open {
            path: Bytes::borrowed(input.to_str().unwrap().as_bytes()),
            access: access::READ,
            result: 3,
            t_ns: 2,
        },
    );
    send(&mut s, &Message::Exit { status: 0, t_ns: 3 });
    drop(s);

    let mut ctl = UnixStream::connect(&socket).unwrap();
    ctl.write_all(&preamble()).unwrap();
    send(
        &mut ctl,
        &Message::FinishJob(JobMeta {
            job_token: "tok".into(),
            kind: "run".into(),
            argv: vec!["fake".into()],
            cwd: p.path().to_string_lossy().into_owned(),
            started_at: 1.0,
            ended_at: 2.0,
            exit_status: 0,
            root_pid: 4242,
            git: None,
            root_untraced: None,
        }),
    );
    let mut payload = Vec::new();
    assert!(roar_protocol::read_frame(&mut ctl, &mut payload).unwrap());
    let reply: Reply = roar_protocol::decode(&payload).unwrap();
    assert!(
        matches!(reply, Reply::Recorded { step: 1, .. }),
        "{reply:?}"
    );
    let out = collector.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = text(&out.stderr);
    assert!(log.contains("undecodable frame"), "{log}");
    assert!(log.contains("exceeds"), "{log}");

    let job = p.json(&["show", "@1"]);
    assert_eq!(entry(&job, "inputs", &input)["hash"], b3(&input));
    let warnings = job["stats"]["warnings"].to_string();
    assert!(
        warnings.contains("version mismatch") && warnings.contains("v999"),
        "{warnings}"
    );
    assert_eq!(job["processes"][0]["exe"], "/bin/fake");
}

#[test]
fn large_final_hashing_reports_progress_before_the_answer() {
    let p = Project::new();
    let big = p.file("big.bin");
    std::fs::write(&big, vec![7u8; 80 << 20]).unwrap();
    let (mut collector, socket, _dir) = start_collector(&p, Stdio::null());

    // A writer still running when the job ends, the file never closed:
    // hashed at the end.
    let mut s = UnixStream::connect(&socket).unwrap();
    s.write_all(&preamble()).unwrap();
    send(
        &mut s,
        &Message::Hello(Hello {
            pid: 77,
            ppid: 1,
            job_token: Bytes::borrowed(b"tok"),
            exe: Bytes::borrowed(b"/bin/fake"),
            argv: vec![Bytes::borrowed(b"fake")],
            cwd: Bytes::borrowed(p.path().to_str().unwrap().as_bytes()),
            t_ns: 1,
        }),
    );
    send(
        &mut s,
        &Message::Open {
            path: Bytes::borrowed(big.to_str().unwrap().as_bytes()),
            access: access::WRITE | access::CREATE | access::TRUNCATE,
            result: 3,
            t_ns: 2,
        },
    );
    let mut ctl = UnixStream::connect(&socket).unwrap();
    ctl.write_all(&preamble()).unwrap();
    send(
        &mut ctl,
        &Message::FinishJob(JobMeta {
            job_token: "tok".into(),
            kind: "run".into(),
            argv: vec!["fake".into()],
            cwd: p.path().to_string_lossy().into_owned(),
            root_pid: 1,
            ..JobMeta::default()
        }),
    );
    let mut payload = Vec::new();
    let mut progress = Vec::new();
    let last = loop {
        assert!(roar_protocol::read_frame(&mut ctl, &mut payload).unwrap());
        match roar_protocol::decode::<Reply>(&payload).unwrap() {
            Reply::Progress {
                hashed_bytes,
                total_bytes,
                hashed_files,
                total_files,
            } => progress.push((hashed_bytes, total_bytes, hashed_files, total_files)),
            other => break other,
        }
    };
    drop(s);
    assert!(matches!(last, Reply::Recorded { .. }), "{last:?}");
    assert_eq!(progress.first(), Some(&(0, 80 << 20, 0, 1)), "{progress:?}");
    assert_eq!(
        progress.last(),
        Some(&(80 << 20, 80 << 20, 1, 1)),
        "{progress:?}"
    );
    assert!(collector.wait().unwrap().success());
}
