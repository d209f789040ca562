//! What one roar invocation changes in the counters, and which milestones
//! it fires. The only milestones there are: first run of an install, first
//! run of a new version, the 1st/2nd/3rd successful `roar run`, a
//! successful `init` or `reset`, and a non-dry-run `register`.

use super::payload::{Trigger, VERSION};
use super::state::Stats;

/// The invocation, as far as telemetry cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Run,
    Build,
    Init,
    Reset,
    Register {
        dry_run: bool,
    },
    Show,
    Dag,
    Log,
    Status,
    // `get` and `put` are on the published allowlist for when roar has
    // those commands; it has none yet.
    Inputs,
    Diff,
    Lineage,
    /// Any other command: not counted, but it is still "roar running" for
    /// the first-seen milestones.
    Other,
}

impl Command {
    /// Its `subcommand_counts` key, when it is counted.
    fn counter(self) -> Option<&'static str> {
        Some(match self {
            Command::Run => "run",
            Command::Build => "build",
            Command::Init => "init",
            Command::Reset => "reset",
            Command::Register { .. } => "register",
            Command::Show => "show",
            Command::Dag => "dag",
            Command::Log => "log",
            Command::Status => "status",
            Command::Inputs => "inputs",
            Command::Diff => "diff",
            Command::Lineage => "lineage",
            Command::Other => return None,
        })
    }
}

/// How the invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// roar did its part; for run/build this is the traced command's status.
    Exit(i32),
    /// roar failed with this exit code before or instead of doing its part.
    Error(u8),
}

/// roar has one tracer backend today: the preload shim.
const ACTIVE_TRACER: &str = "preload";

fn run_outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Exit(0) => "run_success",
        Outcome::Exit(_) => "run_failed",
        Outcome::Error(126 | 127) => "run_failed_spawn",
        Outcome::Error(crate::error::USAGE) => "run_failed_usage",
        Outcome::Error(_) => "run_failed_tracer_setup",
    }
}

/// Updates `stats` for one invocation (`stats` is `None` for a new install)
/// and returns it with the milestones fired, in order. `changed` says
/// whether anything needs writing back.
pub fn apply(
    stats: Option<Stats>,
    cmd: Command,
    outcome: Outcome,
    now: &str,
) -> (Stats, Vec<Trigger>, bool) {
    let mut fired = Vec::new();
    let mut changed = false;
    let mut stats = stats.unwrap_or_else(|| {
        fired.push(Trigger::FirstSeenForInstallId);
        changed = true;
        Stats::fresh()
    });
    if stats.last_version.as_deref() != Some(VERSION) {
        // A fresh install is not also an upgrade.
        if stats.last_version.is_some() {
            fired.push(Trigger::FirstSeenForVersion);
        }
        stats.last_version = Some(VERSION.to_string());
        changed = true;
    }
    if let Some(counter) = cmd.counter() {
        stats.bump(counter);
        changed = true;
        stats.counters_as_of = now.to_string();
    }
    match (cmd, outcome) {
        (Command::Run, _) => {
            stats.bump(run_outcome(outcome));
            if outcome == Outcome::Exit(0) {
                let n = stats.count("run_success");
                if (1..=3).contains(&n) {
                    fired.push(Trigger::SuccessfulRun(n as u8));
                }
            }
        }
        (Command::Init, Outcome::Exit(0)) => fired.push(Trigger::Init),
        (Command::Reset, Outcome::Exit(0)) => fired.push(Trigger::Reset),
        // An attempt to publish is the milestone, whether or not the server
        // took it: where registration fails is what is worth knowing.
        (Command::Register { dry_run: false }, _) => fired.push(Trigger::Register),
        _ => {}
    }
    if matches!(cmd, Command::Run | Command::Build) && matches!(outcome, Outcome::Exit(_)) {
        stats.bump_tracer(ACTIVE_TRACER);
    }
    (stats, fired, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2030-01-01T00:00:00Z";

    fn step(stats: Option<Stats>, cmd: Command, outcome: Outcome) -> (Stats, Vec<Trigger>) {
        let (s, t, _) = apply(stats, cmd, outcome, NOW);
        (s, t)
    }

    #[test]
    fn milestones_over_an_install() {
        let (s, t) = step(None, Command::Init, Outcome::Exit(0));
        assert_eq!(t, [Trigger::FirstSeenForInstallId, Trigger::Init]);
        assert_eq!(s.count("init"), 1);
        assert_eq!(s.counters_as_of, NOW);
        let (s, t) = step(Some(s), Command::Status, Outcome::Exit(0));
        assert!(t.is_empty());
        assert_eq!(s.count("status"), 1);
        let (s, t) = step(Some(s), Command::Run, Outcome::Exit(3));
        assert!(t.is_empty());
        assert_eq!(s.count("run_failed"), 1);
        let mut s = s;
        for n in 1..=4u8 {
            let (next, t) = step(Some(s), Command::Run, Outcome::Exit(0));
            s = next;
            if n <= 3 {
                assert_eq!(t, [Trigger::SuccessfulRun(n)]);
            } else {
                assert!(t.is_empty());
            }
        }
        assert_eq!(s.count("run"), 5);
        assert_eq!(s.tracer_selections["preload"], 5);
        let (s, t) = step(Some(s), Command::Reset, Outcome::Error(2));
        assert!(t.is_empty(), "a failed reset is no milestone");
        let (s, t) = step(
            Some(s),
            Command::Register { dry_run: true },
            Outcome::Exit(0),
        );
        assert!(t.is_empty());
        let (s, t) = step(
            Some(s),
            Command::Register { dry_run: false },
            Outcome::Exit(0),
        );
        assert_eq!(t, [Trigger::Register]);
        assert_eq!(s.count("register"), 2);
        let (_, t, changed) = apply(Some(s.clone()), Command::Other, Outcome::Exit(0), NOW);
        assert!(t.is_empty() && !changed);
    }

    #[test]
    fn upgrade_fires_once() {
        let mut old = Stats::fresh();
        old.last_version = Some("0.0.1".into());
        let (s, t) = step(Some(old), Command::Other, Outcome::Exit(0));
        assert_eq!(t, [Trigger::FirstSeenForVersion]);
        assert_eq!(s.last_version.as_deref(), Some(VERSION));
        let (_, t) = step(Some(s), Command::Other, Outcome::Exit(0));
        assert!(t.is_empty());
    }

    #[test]
    fn run_outcomes() {
        let (s, _) = step(None, Command::Run, Outcome::Error(127));
        assert_eq!(s.count("run_failed_spawn"), 1);
        assert!(s.tracer_selections.is_empty());
        let (s, _) = step(Some(s), Command::Run, Outcome::Error(1));
        assert_eq!(s.count("run_failed_tracer_setup"), 1);
        let (s, _) = step(Some(s), Command::Run, Outcome::Error(2));
        assert_eq!(s.count("run_failed_usage"), 1);
        let (s, t) = step(Some(s), Command::Build, Outcome::Exit(0));
        assert!(t.is_empty(), "build successes are not run milestones");
        assert_eq!(s.count("build"), 1);
    }
}
