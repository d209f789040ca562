//! The detached uploader: a second `roar` process that posts each queued
//! event and deletes it only on `204 No Content`. The foreground command
//! only spawns it and never waits, so a slow or dead endpoint cannot slow
//! roar down; whatever the uploader cannot send stays queued for the next.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{payload, queue, state, Context};

/// The hidden subcommand that runs the uploader.
pub const SUBCOMMAND: &str = "__telemetry-upload";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// For a whole request; the uploader is in the background, but should not
/// linger for long on an endpoint that accepts and never answers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts the uploader and returns at once. Its stdio is /dev/null, so it
/// holds no pipe of the caller's open (a `$(roar init)` returns at once too).
pub fn spawn() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let _ = Command::new(exe)
        .arg(SUBCOMMAND)
        // Never trace the uploader, whatever the caller's environment.
        .env_remove(roar_protocol::env::PRELOAD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    // The child is not waited for: once roar exits, init adopts and reaps it.
}

enum Sent {
    /// 204: delete the file.
    Delivered,
    /// Not an event this roar would send: delete it unsent.
    Refused,
    /// Any other answer, or none: keep it, stop for now.
    Kept,
}

/// The uploader's main; always exits 0 (nobody reads its status).
pub fn run(load: impl Fn() -> Context) -> i32 {
    // Its own session: the terminal's hangup or Ctrl-C does not reach it.
    // (Not a process-group leader, since it was spawned without one, so
    // setsid succeeds; no `unsafe` pre_exec needed.)
    let _ = nix::unistd::setsid();
    let mut tried: HashSet<PathBuf> = HashSet::new();
    loop {
        let ctx = load();
        let (Some(paths), None) = (&ctx.paths, &ctx.off) else {
            return 0; // off: exit without contacting anyone
        };
        // Another uploader at work will look at the queue again before it
        // lets go of the lock (below), so this one can leave.
        let Ok(Some(lock)) = state::lock(&paths.upload_lock(), false) else {
            return 0;
        };
        if !drain(&load, &paths.queue(), &mut tried) {
            return 0;
        }
        drop(lock);
        // An event queued while this uploader held the lock was left to it
        // by the uploader spawned for that event: look once more.
        if queue::list(&paths.queue())
            .iter()
            .all(|f| tried.contains(f))
        {
            return 0;
        }
    }
}

/// Posts every queued file not yet tried; false when one was kept, or
/// telemetry was turned off meanwhile: stop until the next uploader.
fn drain(load: &impl Fn() -> Context, dir: &Path, tried: &mut HashSet<PathBuf>) -> bool {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirects(0)
        .build();
    for file in queue::list(dir) {
        if !tried.insert(file.clone()) {
            continue;
        }
        // Re-read the settings for every event: `--disable` or a changed
        // endpoint takes effect even for an upload already under way.
        let ctx = load();
        let (Some(url), None) = (ctx.endpoint.url(), &ctx.off) else {
            return false;
        };
        let Ok(body) = std::fs::read(&file) else {
            continue; // deleted by another hand meanwhile
        };
        match post(&agent, url, &body) {
            Sent::Delivered | Sent::Refused => {
                let _ = std::fs::remove_file(&file);
            }
            Sent::Kept => return false,
        }
    }
    true
}

/// Posts the file's bytes unchanged: what `--print` shows is what is sent.
fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> Sent {
    if !payload::validate(body) {
        return Sent::Refused;
    }
    match agent
        .post(url)
        .set("Content-Type", "application/json")
        .send_bytes(body)
    {
        Ok(r) if r.status() == 204 => Sent::Delivered,
        _ => Sent::Kept,
    }
}
