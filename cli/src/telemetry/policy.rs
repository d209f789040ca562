//! When telemetry is off. Checked by every foreground command before it
//! counts anything and again by the uploader before it contacts anyone, so
//! turning telemetry off takes effect even for events already queued.

use std::fmt;
use std::path::PathBuf;

use roar_protocol::env as roar_env;

use super::Env;

/// The CI systems' marker variables (the published list).
pub const CI_VARS: [&str; 10] = [
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

/// Variables a test runner sets for the code under test: pytest, pytest-
/// xdist, cargo test / cargo run (and cargo-nextest), Jest, Bats.
pub const TEST_RUNNER_VARS: [&str; 6] = [
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_WORKER",
    "CARGO_MANIFEST_DIR",
    "NEXTEST_RUN_ID",
    "JEST_WORKER_ID",
    "BATS_TEST_FILENAME",
];

/// The roar-specific opt-out; also what `roar run` puts into the traced
/// command's environment when telemetry is off by the user's choice.
pub const NO_TELEMETRY: &str = "ROAR_NO_TELEMETRY";
pub const DO_NOT_TRACK: &str = "DO_NOT_TRACK";
/// Set by Ray's raylet in every worker process it starts.
const RAY_WORKER: &str = "RAY_RAYLET_PID";
/// OSMO's task runtime appends this to `PATH` for the task's command.
const OSMO_BIN: &str = "/osmo/usr/bin";

/// Why telemetry is off.
#[derive(Debug, Clone, PartialEq)]
pub enum Off {
    /// `roar telemetry --disable` (or `enabled = false` by hand).
    UserDisabled(PathBuf),
    /// `telemetry.enabled = false` in the project's config.
    ProjectDisabled(PathBuf),
    /// A config file telemetry cannot read: off until it is fixed, since it
    /// may hold an opt-out.
    BadConfig(String),
    EnvOptOut(&'static str),
    Ci(&'static str),
    TestRunner(&'static str),
    /// This roar runs inside a command that `roar run` traces; the outer
    /// `roar run` already counts the invocation.
    TracedJob,
    RayWorker,
    OsmoWorker,
    /// No home directory to keep an install id or opt-out in.
    NoHome,
}

impl Off {
    /// Off because the user said so: the traced command gets
    /// `ROAR_NO_TELEMETRY=1`, so roar in workers it starts stays off too.
    pub fn by_user(&self) -> bool {
        matches!(
            self,
            Off::UserDisabled(_) | Off::ProjectDisabled(_) | Off::EnvOptOut(_)
        )
    }
}

impl fmt::Display for Off {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Off::UserDisabled(p) => write!(f, "disabled in {}", p.display()),
            Off::ProjectDisabled(p) => {
                write!(f, "telemetry.enabled = false in {}", p.display())
            }
            Off::BadConfig(e) => write!(f, "unreadable configuration: {e}"),
            Off::EnvOptOut(var) => write!(f, "{var} is set"),
            Off::Ci(var) => write!(f, "running in CI ({var} is set)"),
            Off::TestRunner(var) => write!(f, "running under a test runner ({var} is set)"),
            Off::TracedJob => write!(f, "running inside a job traced by roar run"),
            Off::RayWorker => write!(f, "running in a Ray worker"),
            Off::OsmoWorker => write!(f, "running in an OSMO task"),
            Off::NoHome => write!(f, "no home directory to keep settings in"),
        }
    }
}

/// Set to something other than empty, `0`, `false`, `no` or `off`.
fn truthy(env: Env, var: &str) -> bool {
    env(var).is_some_and(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "off"
        )
    })
}

fn present(env: Env, var: &str) -> bool {
    env(var).is_some_and(|v| !v.is_empty())
}

/// The environment's verdict, before any config file is read.
pub fn from_env(env: Env) -> Option<Off> {
    if truthy(env, DO_NOT_TRACK) {
        return Some(Off::EnvOptOut(DO_NOT_TRACK));
    }
    if truthy(env, NO_TELEMETRY) {
        return Some(Off::EnvOptOut(NO_TELEMETRY));
    }
    if present(env, roar_env::JOB) || present(env, roar_env::SOCKET) {
        return Some(Off::TracedJob);
    }
    if let Some(var) = CI_VARS.iter().find(|v| truthy(env, v)) {
        return Some(Off::Ci(var));
    }
    if let Some(var) = TEST_RUNNER_VARS.iter().find(|v| present(env, v)) {
        return Some(Off::TestRunner(var));
    }
    if present(env, RAY_WORKER) {
        return Some(Off::RayWorker);
    }
    if env("PATH").is_some_and(|p| p.split(':').any(|d| d.trim_end_matches('/') == OSMO_BIN)) {
        return Some(Off::OsmoWorker);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vars: &[(&str, &str)]) -> Option<Off> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        from_env(&lookup)
    }

    #[test]
    fn each_switch() {
        assert_eq!(check(&[("PATH", "/usr/bin:/bin")]), None);
        assert_eq!(
            check(&[("DO_NOT_TRACK", "1")]),
            Some(Off::EnvOptOut(DO_NOT_TRACK))
        );
        assert_eq!(check(&[("DO_NOT_TRACK", "0")]), None);
        assert_eq!(
            check(&[("ROAR_NO_TELEMETRY", "1")]),
            Some(Off::EnvOptOut(NO_TELEMETRY))
        );
        assert_eq!(check(&[("ROAR_JOB", "abc")]), Some(Off::TracedJob));
        assert_eq!(check(&[("ROAR_SOCKET", "/tmp/s")]), Some(Off::TracedJob));
        for var in CI_VARS {
            assert_eq!(check(&[(var, "true")]), Some(Off::Ci(var)), "{var}");
        }
        assert_eq!(check(&[("CI", "false")]), None);
        assert_eq!(
            check(&[("JENKINS_URL", "https://ci.example.org/")]),
            Some(Off::Ci("JENKINS_URL"))
        );
        assert_eq!(
            check(&[("PYTEST_CURRENT_TEST", "t.py::x (call)")]),
            Some(Off::TestRunner("PYTEST_CURRENT_TEST"))
        );
        assert_eq!(check(&[("RAY_RAYLET_PID", "42")]), Some(Off::RayWorker));
        assert_eq!(
            check(&[("PATH", "/usr/bin:/osmo/usr/bin")]),
            Some(Off::OsmoWorker)
        );
        assert!(Off::EnvOptOut(DO_NOT_TRACK).by_user());
        assert!(!Off::Ci("CI").by_user());
    }
}
