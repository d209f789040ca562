//! Product telemetry, as published in docs/telemetry.md: anonymous,
//! milestone-bounded, never blocking, easy to turn off.
//!
//! The parts, one job each:
//! - `payload`: THE place that builds what is uploaded (the audit point);
//! - `triggers`: which counters an invocation bumps and which milestones
//!   it fires;
//! - `state`: stats.json (install id, sequence, counters) and the locks;
//! - `queue`: the directory of events waiting for upload;
//! - `config`: paths and the `telemetry.*` settings; `policy`: the
//!   off-switches; `upload`: the detached uploader; `command`:
//!   `roar telemetry`.
//!
//! The foreground never touches the network: a milestone writes one file
//! into the queue and spawns the uploader. Nothing here may make a roar
//! command fail: errors are swallowed.

mod clock;
mod command;
mod config;
mod payload;
mod policy;
mod queue;
mod state;
mod triggers;
mod upload;

use std::path::{Path, PathBuf};

pub use command::{command, TelemetryArgs};
pub use triggers::Command;
pub use upload::SUBCOMMAND as UPLOAD_SUBCOMMAND;

use config::{ConfigFile, Endpoint, Paths, Settings};
use payload::EventMeta;
use policy::Off;
use state::Stats;
use triggers::Outcome;

/// How telemetry reads environment variables (a closure in unit tests).
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Everything that decides what telemetry does here and now.
pub struct Context {
    /// `None`: no home directory (then `off` says so).
    paths: Option<Paths>,
    project_config: Option<PathBuf>,
    off: Option<Off>,
    endpoint: Endpoint,
}

impl Context {
    fn load(env: Env, cwd: Option<&Path>) -> Context {
        let paths = config::paths(env);
        let mut off = policy::from_env(env);
        let mut read = |path: &Path, disabled: fn(PathBuf) -> Off| -> Settings {
            match ConfigFile::load(path).and_then(|f| f.settings()) {
                Ok(s) => {
                    if s.enabled == Some(false) {
                        off = Some(disabled(path.to_path_buf()));
                    }
                    s
                }
                Err(e) => {
                    off = Some(Off::BadConfig(e));
                    Settings::default()
                }
            }
        };
        // Later verdicts replace earlier ones: the user's own config is the
        // most useful reason to show.
        let project_config = cwd
            .and_then(|c| crate::project::Project::find(c).ok())
            .map(|p| p.config_path())
            .filter(|p| p.is_file());
        let project = project_config
            .as_deref()
            .map(|p| (read(p, Off::ProjectDisabled), p));
        let global = match &paths {
            Some(p) => read(&p.global_config, Off::UserDisabled),
            None => Settings::default(),
        };
        if paths.is_none() {
            off = Some(Off::NoHome);
        }
        let global_path = paths
            .as_ref()
            .map_or_else(|| PathBuf::from("global.toml"), |p| p.global_config.clone());
        let endpoint = config::resolve_endpoint(
            &global,
            &global_path,
            project.as_ref().map(|(s, p)| (s, *p)),
            env(config::GLAAS_ENV).as_deref(),
        );
        Context {
            paths,
            project_config,
            off,
            endpoint,
        }
    }

    fn here() -> Context {
        let cwd = std::env::current_dir().ok();
        Context::load(&process_env, cwd.as_deref())
    }
}

/// Counts one finished roar invocation and queues the milestones it fired.
/// Call once per invocation, after the command, with its result. Does
/// nothing when telemetry is off.
pub fn record(cmd: Command, result: &crate::error::Result<i32>) {
    let outcome = match result {
        Ok(status) => Outcome::Exit(*status),
        Err(e) => Outcome::Error(e.code),
    };
    let ctx = Context::here();
    let (Some(paths), None) = (&ctx.paths, &ctx.off) else {
        return;
    };
    if let Ok(true) = count(paths, &ctx.endpoint, cmd, outcome) {
        upload::spawn();
    }
}

/// Updates stats.json and queues events; true when anything was queued.
fn count(
    paths: &Paths,
    endpoint: &Endpoint,
    cmd: Command,
    outcome: Outcome,
) -> std::io::Result<bool> {
    std::fs::create_dir_all(&paths.dir)?;
    let _lock = state::lock(&paths.stats_lock(), true)?;
    let now = clock::now();
    let (mut stats, fired, changed) =
        triggers::apply(Stats::load(&paths.stats()), cmd, outcome, &now);
    if !changed {
        return Ok(false);
    }
    // An empty (or refused) endpoint keeps the counters but queues nothing:
    // no one would ever send those files.
    let uploads = endpoint.url().is_some();
    let mut queued = false;
    for trigger in fired.into_iter().filter(|_| uploads) {
        stats.sequence += 1;
        let meta = EventMeta {
            event_id: clock::uuid_v4(),
            trigger,
            trigger_ts: now.clone(),
            sequence: stats.sequence,
        };
        let bytes = payload::render(&stats, &meta);
        queue::write(&paths.queue(), meta.sequence, &meta.event_id, &bytes)?;
        queued = true;
    }
    stats.save(&paths.stats())?;
    Ok(queued)
}

/// What `roar run` adds to the traced command's environment: when the user
/// turned telemetry off, `ROAR_NO_TELEMETRY=1`, so that a roar started by
/// the job (or by workers it launches) stays off without its own config.
pub fn job_env() -> Option<(&'static str, &'static str)> {
    Context::here()
        .off
        .filter(Off::by_user)
        .map(|_| (policy::NO_TELEMETRY, "1"))
}

/// The hidden uploader subcommand.
pub fn upload_queued() -> i32 {
    upload::run(Context::here)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private HOME/XDG tree and an environment with nothing that turns
    /// telemetry off.
    struct Sandbox {
        dir: PathBuf,
    }

    impl Sandbox {
        fn new(name: &str) -> Sandbox {
            let dir = std::env::temp_dir().join(format!("roar-tel-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Sandbox { dir }
        }

        fn env(&self, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
            let mut vars: Vec<(String, String)> = vec![
                ("HOME".into(), self.dir.join("home").display().to_string()),
                (
                    "XDG_CONFIG_HOME".into(),
                    self.dir.join("config").display().to_string(),
                ),
                (
                    "XDG_CACHE_HOME".into(),
                    self.dir.join("cache").display().to_string(),
                ),
            ];
            vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        }
    }

    impl Drop for Sandbox {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn counting_queues_only_milestones() {
        let sb = Sandbox::new("count");
        let env = sb.env(&[]);
        let ctx = Context::load(&env, None);
        assert_eq!(ctx.off, None);
        let paths = ctx.paths.clone().unwrap();
        let ep = Endpoint::Url {
            url: "http://127.0.0.1:9/t".into(),
            source: "test".into(),
        };
        assert!(count(&paths, &ep, Command::Init, Outcome::Exit(0)).unwrap());
        assert!(!count(&paths, &ep, Command::Status, Outcome::Exit(0)).unwrap());
        assert!(count(
            &paths,
            &ep,
            Command::Register { dry_run: false },
            Outcome::Exit(0)
        )
        .unwrap());
        let files = queue::list(&paths.queue());
        let triggers: Vec<String> = files
            .iter()
            .map(|f| {
                let bytes = std::fs::read(f).unwrap();
                assert!(payload::validate(&bytes));
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                format!("{}:{}", v["sequence"], v["trigger"].as_str().unwrap())
            })
            .collect();
        assert_eq!(
            triggers,
            ["1:first_seen_for_install_id", "2:init", "3:register"]
        );
        let stats = Stats::load(&paths.stats()).unwrap();
        assert_eq!(stats.count("status"), 1);
        assert_eq!(stats.sequence, 3);

        // An empty endpoint keeps counting and queues nothing.
        let forbidden = Endpoint::Forbidden {
            source: "test".into(),
        };
        assert!(!count(&paths, &forbidden, Command::Reset, Outcome::Exit(0)).unwrap());
        assert_eq!(queue::list(&paths.queue()).len(), 3);
        assert_eq!(Stats::load(&paths.stats()).unwrap().count("reset"), 1);
    }

    #[test]
    fn config_switches() {
        let sb = Sandbox::new("cfg");
        let env = sb.env(&[]);
        let paths = config::paths(&env).unwrap();
        let mut f = ConfigFile::load(&paths.global_config).unwrap();
        f.set_enabled(false);
        f.save().unwrap();
        assert_eq!(
            Context::load(&env, None).off,
            Some(Off::UserDisabled(paths.global_config.clone()))
        );
        std::fs::write(&paths.global_config, "[telemetry\n").unwrap();
        assert!(matches!(
            Context::load(&env, None).off,
            Some(Off::BadConfig(_))
        ));
        std::fs::write(&paths.global_config, "[telemetry]\nendpoint = \"\"\n").unwrap();
        let ctx = Context::load(&env, None);
        assert_eq!(ctx.off, None);
        assert!(matches!(ctx.endpoint, Endpoint::Forbidden { .. }));

        // A project's own switch.
        let project = sb.dir.join("proj");
        std::fs::create_dir_all(project.join(".roar")).unwrap();
        std::fs::write(
            project.join(".roar/config.toml"),
            "[telemetry]\nenabled = false\n",
        )
        .unwrap();
        std::fs::remove_file(&paths.global_config).unwrap();
        let ctx = Context::load(&env, Some(&project));
        assert!(matches!(ctx.off, Some(Off::ProjectDisabled(_))));
        assert!(ctx.off.unwrap().by_user());

        let env = sb.env(&[("CI", "true")]);
        assert_eq!(Context::load(&env, None).off, Some(Off::Ci("CI")));
        let none = |_: &str| None;
        // Without HOME, dirs::home_dir() may still find one from the
        // password database; either way nothing breaks.
        let _ = Context::load(&none, None);
    }
}
