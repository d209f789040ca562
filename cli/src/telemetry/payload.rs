//! THE single place that decides what a telemetry event contains: the audit
//! point of the published contract (docs/telemetry.md).
//!
//! Everything uploaded is built by [`build`] and rendered by [`render`];
//! `roar telemetry --print` shows the same bytes. The payload is a struct,
//! so its top-level fields are exactly [`FIELDS`], in that order. Its text
//! values are either compile-time constants from the lists below, or ids and
//! timestamps whose shape `clock` checks (a UUID or `YYYY-MM-DDTHH:MM:SSZ`
//! cannot carry a path, a name or a value). There is no free-form string
//! anywhere, so no command, argument, path, env value, host or user name,
//! hash, job id, token or program output can enter it. The uploader refuses
//! to send a queued file that does not pass [`validate`].

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::clock::{is_timestamp, is_uuid};
use super::state::Stats;

/// Bumps whenever the payload's shape changes.
pub const PAYLOAD_SCHEMA_VERSION: u32 = 1;
/// Bumps whenever stats.json's shape changes.
pub const STATS_SCHEMA_VERSION: u32 = 1;

/// The top-level fields, in wire order. Nothing else is ever sent.
pub const FIELDS: [&str; 14] = [
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

/// The subcommands that are counted; others are not counted at all.
pub const SUBCOMMANDS: [&str; 14] = [
    "run", "build", "init", "reset", "register", "show", "dag", "log", "status", "get", "put",
    "inputs", "diff", "lineage",
];

/// How a `roar run` ended, one counter each.
pub const RUN_OUTCOMES: [&str; 5] = [
    // The command ran traced and exited 0.
    "run_success",
    // The command ran traced and exited non-zero (or was killed).
    "run_failed",
    // roar could not set tracing up (shim, collector, socket).
    "run_failed_tracer_setup",
    // The command could not be started (not found, not executable).
    "run_failed_spawn",
    // Bad invocation: no project, invalid configuration.
    "run_failed_usage",
];

/// The tracer backends a run can end up with.
pub const TRACERS: [&str; 7] = [
    "preload", "ptrace", "ebpf", "native", "auto", "disabled", "unknown",
];

/// Keys of `platform`.
const PLATFORM_FIELDS: [&str; 3] = ["os", "arch", "containerized"];
const OS_CLASSES: [&str; 4] = ["linux", "macos", "windows", "other"];
const ARCHES: [&str; 6] = ["x86_64", "arm64", "x86", "arm", "riscv64", "other"];
/// Keys of `feature_capabilities`, all booleans.
const CAPABILITIES: [&str; 4] = ["blake3", "ebpf_kernel_support", "proxy", "ray"];

/// The allowlisted spelling of a `subcommand_counts` key.
pub fn counter_key(name: &str) -> Option<&'static str> {
    SUBCOMMANDS
        .iter()
        .chain(RUN_OUTCOMES.iter())
        .find(|k| **k == name)
        .copied()
}

/// The allowlisted spelling of a `tracer_selections` key.
pub fn tracer_key(name: &str) -> Option<&'static str> {
    TRACERS.iter().find(|k| **k == name).copied()
}

/// Which milestone an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    FirstSeenForInstallId,
    FirstSeenForVersion,
    /// The 1st, 2nd or 3rd successful `roar run` of this install.
    SuccessfulRun(u8),
    Init,
    Reset,
    Register,
    /// `roar telemetry --print`: shown, never queued or sent.
    Preview,
}

/// Triggers the uploader accepts; `preview` is deliberately absent.
const UPLOAD_TRIGGERS: [&str; 8] = [
    "first_seen_for_install_id",
    "first_seen_for_version",
    "first_successful_run",
    "second_successful_run",
    "third_successful_run",
    "init",
    "reset",
    "register",
];

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::FirstSeenForInstallId => "first_seen_for_install_id",
            Trigger::FirstSeenForVersion => "first_seen_for_version",
            Trigger::SuccessfulRun(1) => "first_successful_run",
            Trigger::SuccessfulRun(2) => "second_successful_run",
            // `triggers` fires only the 1st, 2nd and 3rd.
            Trigger::SuccessfulRun(_) => "third_successful_run",
            Trigger::Init => "init",
            Trigger::Reset => "reset",
            Trigger::Register => "register",
            Trigger::Preview => "preview",
        }
    }
}

/// What makes one event distinct from another built from the same stats.
pub struct EventMeta {
    pub event_id: String,
    pub trigger: Trigger,
    pub trigger_ts: String,
    pub sequence: u64,
}

#[derive(Serialize)]
struct Payload<'a> {
    payload_schema_version: u32,
    stats_schema_version: u32,
    event_id: &'a str,
    install_id: &'a str,
    sequence: u64,
    first_seen: &'a str,
    trigger: &'static str,
    trigger_ts: &'a str,
    counters_as_of: &'a str,
    version: &'static str,
    platform: Platform,
    subcommand_counts: &'a BTreeMap<&'static str, u64>,
    tracer_selections: &'a BTreeMap<&'static str, u64>,
    feature_capabilities: Capabilities,
}

#[derive(Serialize)]
struct Platform {
    os: &'static str,
    arch: &'static str,
    containerized: bool,
}

#[derive(Serialize)]
struct Capabilities {
    /// Content hashing is compiled in.
    blake3: bool,
    /// The kernel exposes BTF, which an eBPF tracer needs.
    ebpf_kernel_support: bool,
    /// This build has no proxy mode.
    proxy: bool,
    /// This build has no Ray integration.
    ray: bool,
}

/// The roar version the payload reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn os_class() -> &'static str {
    if cfg!(target_os = "linux") {
        "linux"
    } else if cfg!(target_os = "macos") {
        "macos"
    } else if cfg!(target_os = "windows") {
        "windows"
    } else {
        "other"
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm",
        "riscv64" => "riscv64",
        _ => "other",
    }
}

/// Yes or no only: which runtime it is stays here.
fn containerized() -> bool {
    ["/.dockerenv", "/run/.containerenv"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

fn capabilities() -> Capabilities {
    Capabilities {
        blake3: true,
        ebpf_kernel_support: cfg!(target_os = "linux")
            && std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
        proxy: false,
        ray: false,
    }
}

/// Renders the event for `stats` and `meta`: the exact bytes queued, posted
/// and printed (pretty JSON and a final newline, so `--print` is readable
/// and still byte-identical).
pub fn render(stats: &Stats, meta: &EventMeta) -> Vec<u8> {
    let payload = Payload {
        payload_schema_version: PAYLOAD_SCHEMA_VERSION,
        stats_schema_version: STATS_SCHEMA_VERSION,
        event_id: &meta.event_id,
        install_id: &stats.install_id,
        sequence: meta.sequence,
        first_seen: &stats.first_seen,
        trigger: meta.trigger.name(),
        trigger_ts: &meta.trigger_ts,
        counters_as_of: &stats.counters_as_of,
        version: VERSION,
        platform: Platform {
            os: os_class(),
            arch: arch(),
            containerized: containerized(),
        },
        subcommand_counts: &stats.subcommand_counts,
        tracer_selections: &stats.tracer_selections,
        feature_capabilities: capabilities(),
    };
    let mut out = serde_json::to_vec_pretty(&payload).expect("the payload always serialises");
    out.push(b'\n');
    out
}

/// Whether `bytes` is an event this module could have built for upload:
/// exactly the allowlisted fields, each of its allowed shape.
pub fn validate(bytes: &[u8]) -> bool {
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(bytes) else {
        return false;
    };
    if top.len() != FIELDS.len() || !FIELDS.iter().all(|f| top.contains_key(*f)) {
        return false;
    }
    let s = |k: &str| top[k].as_str().unwrap_or("");
    top["payload_schema_version"].is_u64()
        && top["stats_schema_version"].is_u64()
        && top["sequence"].is_u64()
        && is_uuid(s("event_id"))
        && is_uuid(s("install_id"))
        && is_timestamp(s("first_seen"))
        && is_timestamp(s("trigger_ts"))
        && is_timestamp(s("counters_as_of"))
        && UPLOAD_TRIGGERS.contains(&s("trigger"))
        && is_version(s("version"))
        && valid_platform(&top["platform"])
        && counts_within(&top["subcommand_counts"], |k| counter_key(k).is_some())
        && counts_within(&top["tracer_selections"], |k| tracer_key(k).is_some())
        && flags_within(&top["feature_capabilities"])
}

/// A release version such as `0.2.12` or `1.0.0-rc.1` (an event may have
/// been queued by the version before an upgrade).
fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
}

fn valid_platform(v: &Value) -> bool {
    let Some(p) = v.as_object() else {
        return false;
    };
    p.len() == PLATFORM_FIELDS.len()
        && p.get("os")
            .and_then(Value::as_str)
            .is_some_and(|o| OS_CLASSES.contains(&o))
        && p.get("arch")
            .and_then(Value::as_str)
            .is_some_and(|a| ARCHES.contains(&a))
        && p.get("containerized").is_some_and(Value::is_boolean)
}

fn counts_within(v: &Value, allowed: impl Fn(&str) -> bool) -> bool {
    v.as_object()
        .is_some_and(|m| m.iter().all(|(k, n)| allowed(k) && n.is_u64()))
}

fn flags_within(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.len() == CAPABILITIES.len()
            && m.iter()
                .all(|(k, b)| CAPABILITIES.contains(&k.as_str()) && b.is_boolean())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::clock;

    fn meta(trigger: Trigger) -> EventMeta {
        EventMeta {
            event_id: clock::uuid_v4(),
            trigger,
            trigger_ts: clock::now(),
            sequence: 7,
        }
    }

    #[test]
    fn fields_in_order_and_valid() {
        let mut stats = Stats::fresh();
        stats.bump("run");
        stats.bump("run_success");
        stats.bump_tracer("preload");
        let bytes = render(&stats, &meta(Trigger::Init));
        assert!(bytes.ends_with(b"}\n"));
        assert!(validate(&bytes), "{}", String::from_utf8_lossy(&bytes));
        let text = String::from_utf8(bytes).unwrap();
        let mut at = 0;
        for f in FIELDS {
            let pos = text
                .find(&format!("\n  \"{f}\":"))
                .unwrap_or_else(|| panic!("{f}"));
            assert!(pos >= at, "{f} out of order");
            at = pos;
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["subcommand_counts"]["run"], 1);
        assert_eq!(v["tracer_selections"]["preload"], 1);
        assert_eq!(v["version"], VERSION);
        assert_eq!(v["sequence"], 7);
    }

    #[test]
    fn preview_and_tampering_are_refused() {
        let stats = Stats::fresh();
        assert!(!validate(&render(&stats, &meta(Trigger::Preview))));
        let good = render(&stats, &meta(Trigger::Reset));
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["hostname"] = "box".into();
        assert!(!validate(&serde_json::to_vec(&v).unwrap()));
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["subcommand_counts"]["python train.py"] = 1.into();
        assert!(!validate(&serde_json::to_vec(&v).unwrap()));
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["install_id"] = "/home/alice/secret".into();
        assert!(!validate(&serde_json::to_vec(&v).unwrap()));
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["platform"]["distro"] = "ubuntu".into();
        assert!(!validate(&serde_json::to_vec(&v).unwrap()));
        assert!(!validate(b"not json"));
    }

    #[test]
    fn keys_are_interned_from_the_allowlists() {
        assert_eq!(counter_key("run_failed_spawn"), Some("run_failed_spawn"));
        assert_eq!(counter_key("label"), None);
        assert_eq!(tracer_key("preload"), Some("preload"));
        assert_eq!(tracer_key("/usr/lib/libroar.so"), None);
        for n in 1..=3 {
            assert!(UPLOAD_TRIGGERS.contains(&Trigger::SuccessfulRun(n).name()));
        }
    }
}
