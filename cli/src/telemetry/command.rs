//! `roar telemetry`: show, print, and change the telemetry settings. It is
//! never counted itself, so `--disable` right after installing sends nothing.

use clap::{ArgGroup, Args};
use serde_json::json;

use super::config::{check_url, ConfigFile, Endpoint, Paths};
use super::payload::{self, EventMeta, Trigger};
use super::state::Stats;
use super::{clock, queue, Context};
use crate::error::{CliError, Result};
use crate::out::{self, outln};

/// `roar telemetry` (see docs/telemetry.md).
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").args(["status", "print", "disable", "enable"])))]
pub struct TelemetryArgs {
    /// Whether telemetry is on here and why, the endpoint, queued events,
    /// the install id and the files it uses (the default).
    #[arg(long)]
    status: bool,
    /// Print the exact JSON that would be uploaded for a `preview` event
    /// (never queued or sent).
    #[arg(long)]
    print: bool,
    /// Turn telemetry off for this user, persistently, and delete queued events.
    #[arg(long)]
    disable: bool,
    /// Turn telemetry back on for this user.
    #[arg(long)]
    enable: bool,
    /// Send events to URL (persistent, per user); "" forbids uploads but
    /// keeps the local counters.
    #[arg(long, value_name = "URL", conflicts_with_all = ["status", "print"])]
    endpoint: Option<String>,
    /// With --status: print machine-readable JSON.
    #[arg(long, conflicts_with_all = ["print", "disable", "enable", "endpoint"])]
    json: bool,
}

pub fn command(args: TelemetryArgs) -> Result<i32> {
    let ctx = Context::here();
    let Some(paths) = ctx.paths.clone() else {
        return Err(CliError::failure(
            "no home directory for telemetry settings: set HOME or XDG_CONFIG_HOME",
        ));
    };
    if args.disable || args.enable || args.endpoint.is_some() {
        change(&args, &paths)?;
    } else if args.print {
        print(&ctx, &paths);
    } else {
        status(&ctx, &paths, args.json);
    }
    Ok(0)
}

fn change(args: &TelemetryArgs, paths: &Paths) -> Result<()> {
    if let Some(url) = args.endpoint.as_deref().filter(|u| !u.is_empty()) {
        check_url(url).map_err(CliError::usage)?;
    }
    let mut file = ConfigFile::load(&paths.global_config)
        .map_err(|e| CliError::failure(format!("{e}; fix or remove the file")))?;
    if let Some(url) = &args.endpoint {
        file.set_endpoint(url);
    }
    if args.disable {
        file.set_enabled(false);
    }
    if args.enable {
        file.set_enabled(true);
    }
    file.save().map_err(CliError::failure)?;
    let where_ = paths.global_config.display();
    match args.endpoint.as_deref() {
        Some("") => {
            outln!("telemetry uploads forbidden in {where_}; counters stay on this machine")
        }
        Some(url) => outln!("telemetry endpoint set to {url} in {where_}"),
        None => {}
    }
    if args.disable {
        let n = queue::wipe(&paths.queue());
        outln!("telemetry disabled in {where_}; deleted {n} queued event(s)");
    }
    if args.enable {
        outln!("telemetry enabled in {where_}");
        if let Some(off) = Context::here().off {
            eprintln!("roar: telemetry stays off here: {off}");
        }
    }
    Ok(())
}

/// The preview event for the current state, byte for byte as the uploader
/// would send it. Writes nothing: with no state yet, the install id shown
/// is an example that is not kept.
fn print(ctx: &Context, paths: &Paths) {
    let (stats, example) = match Stats::load(&paths.stats()) {
        Some(s) => (s, false),
        None => (Stats::fresh(), true),
    };
    let meta = EventMeta {
        event_id: clock::uuid_v4(),
        trigger: Trigger::Preview,
        trigger_ts: clock::now(),
        sequence: stats.sequence + 1,
    };
    let bytes = payload::render(&stats, &meta);
    out::print(std::str::from_utf8(&bytes).expect("JSON is UTF-8"));
    if let Some(off) = &ctx.off {
        eprintln!("roar: telemetry is off ({off}); nothing is uploaded");
    } else if ctx.endpoint.url().is_none() {
        eprintln!("roar: telemetry uploads are forbidden; nothing is uploaded");
    }
    if example {
        eprintln!("roar: no install id yet; the one shown is an example and is not kept");
    }
}

fn status(ctx: &Context, paths: &Paths, as_json: bool) {
    let stats = Stats::load(&paths.stats());
    let queued = queue::list(&paths.queue()).len();
    let (endpoint, endpoint_note) = match &ctx.endpoint {
        Endpoint::Url { url, source } => (Some(url.as_str()), source.clone()),
        Endpoint::Forbidden { source } => (None, format!("uploads forbidden by {source}")),
        Endpoint::Invalid { source, reason } => {
            (None, format!("uploads refused: {reason} ({source})"))
        }
    };
    if as_json {
        let v = json!({
            "enabled": ctx.off.is_none(),
            "reason": ctx.off.as_ref().map(ToString::to_string),
            "uploads": ctx.off.is_none() && endpoint.is_some(),
            "endpoint": endpoint,
            "endpoint_source": endpoint_note,
            "queued": queued,
            "install_id": stats.as_ref().map(|s| s.install_id.as_str()),
            "global_config": paths.global_config,
            "project_config": ctx.project_config,
            "stats": paths.stats(),
            "queue": paths.queue(),
        });
        outln!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
        return;
    }
    match &ctx.off {
        None => outln!("telemetry:      on"),
        Some(off) => outln!("telemetry:      off ({off})"),
    }
    match endpoint {
        Some(url) => outln!("endpoint:       {url} ({endpoint_note})"),
        None => outln!("endpoint:       none ({endpoint_note})"),
    }
    outln!("queued events:  {queued}");
    match &stats {
        Some(s) => outln!("install id:     {}", s.install_id),
        None => outln!("install id:     none yet"),
    }
    outln!("global config:  {}", paths.global_config.display());
    if let Some(p) = &ctx.project_config {
        outln!("project config: {}", p.display());
    }
    outln!("stats:          {}", paths.stats().display());
    outln!("queue:          {}", paths.queue().display());
}
