//! `roar`: record what a command actually read and wrote, as lineage.

mod collector_cmd;
mod colour;
mod config_cmd;
mod dag;
mod diff;
mod error;
mod glaas;
mod graph;
mod human;
mod label_cmd;
mod lineage;
mod locate;
mod out;
mod project;
mod run;
mod search_cmd;
mod session_cmd;
mod show;
mod signals;
mod spool;
mod summary;
mod target;
mod telemetry;
mod tracer_cmd;
mod untraced;
mod view;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::out::outln;
use error::{CliError, Result};
use project::Project;

#[derive(Parser)]
#[command(
    name = "roar",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("ROAR_GIT_COMMIT"), ")"),
    about = "Record what a command actually read and wrote, hashed, as a lineage graph",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args)]
struct JsonFlag {
    /// Print machine-readable JSON (see docs/json.md).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FormatArgs {
    /// tree (default), json, dot (Graphviz), mermaid or svg (drawn by roar).
    #[arg(long, value_name = "FORMAT", default_value = "tree")]
    format: String,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
}

impl FormatArgs {
    fn format(&self) -> Result<lineage::Format> {
        if self.json {
            return Ok(lineage::Format::Json);
        }
        lineage::Format::named(&self.format)
    }
}

#[derive(Args)]
struct RunArgs {
    /// Print nothing after the command.
    #[arg(short, long)]
    quiet: bool,
    /// List the recorded files and filter counts after the command.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create .roar/ (configuration and database) in the current directory.
    Init,
    /// Run a command, recording its processes, inputs and outputs as one job.
    Run(RunArgs),
    /// Like `run`, for a build step (listed as such).
    Build(RunArgs),
    /// The jobs of the active session.
    Log(JsonFlag),
    /// The project, the active session and its last job.
    Status(JsonFlag),
    /// One job (@N or uid prefix) or artifact (path or hash prefix).
    Show {
        target: String,
        /// List every file (long lists are cut otherwise).
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// The session's jobs linked through the artifacts they share.
    Dag(FormatArgs),
    /// From an artifact (path or hash) or step back to its root inputs, across sessions.
    Lineage {
        target: String,
        /// Follow at most N producing jobs back.
        #[arg(long, value_name = "N")]
        depth: Option<usize>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// The root input artifacts of an artifact or step.
    Inputs {
        target: String,
        /// Only inputs no recorded job produced (they must come from elsewhere).
        #[arg(long)]
        unsourced: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// How the provenance of two artifacts or two steps differs.
    Diff {
        a: String,
        b: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Start a new session; the old one stays queryable.
    Reset,
    /// Publish lineage to GLaaS: @N, job uid, artifact path or hash (with its
    /// upstream lineage), or `dag current`; secrets are redacted first.
    Register {
        #[arg(required = true, num_args = 1..=2, value_name = "TARGET")]
        target: Vec<String>,
        /// Print the exact JSON bodies, in order; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask before an anonymous, public registration.
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
    /// Who may see what you register: show, or use anonymous|public|private|OWNER/PROJECT.
    #[command(subcommand)]
    Scope(ScopeCmd),
    /// Save a GLaaS token (in your config dir, readable only by you).
    Login {
        #[arg(long, value_name = "TOKEN")]
        token: String,
    },
    /// Forget the saved GLaaS token.
    Logout,
    /// The project's collector for launcher mode (LD_PRELOAD without `roar run`).
    #[command(subcommand)]
    Collector(CollectorCmd),
    /// The tracing backends and whether each works here (preload is probed for real).
    Tracer {
        #[command(subcommand)]
        check: Option<TracerCmd>,
    },
    /// A completion script for your shell: bash, zsh, fish, powershell or elvish.
    Completions { shell: clap_complete::Shell },
    /// The export lines a launcher needs: LD_PRELOAD and ROAR_SOCKET.
    Env {
        /// sh (also bash, zsh) or fish.
        #[arg(long, default_value = "sh")]
        shell: String,
    },
    /// The GLaaS account the token belongs to.
    Whoami,
    /// Remove the last job of the active session.
    Pop {
        /// Do not ask.
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
    /// Read and change .roar/config.toml (unknown keys and bad values are refused).
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Labels: metadata on a job (@N|UID), artifact (PATH|HASH) or dag (current|HASH).
    #[command(subcommand)]
    Label(LabelCmd),
    /// Labelled records matching a predicate, e.g. 'metrics.accuracy>0.9 AND stage=baseline'.
    Search {
        /// Clauses KEY OP VALUE (= != > >= < <=) or has:KEY, joined by AND, OR,
        /// NOT and parentheses. Numbers compare as numbers, quoted values as strings.
        predicate: String,
        /// Only jobs, artifacts or dags.
        #[arg(long, value_name = "job|artifact|dag")]
        kind: Option<String>,
        /// Order by this label's value (records without it last).
        #[arg(long, value_name = "KEY")]
        sort: Option<String>,
        /// Largest first.
        #[arg(long, requires = "sort")]
        desc: bool,
        /// At most N records.
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Anonymous usage telemetry: --status, --print, --disable, --enable, --endpoint URL.
    Telemetry(telemetry::TelemetryArgs),
    /// The detached telemetry uploader, started by roar itself.
    #[command(name = telemetry::UPLOAD_SUBCOMMAND, hide = true)]
    TelemetryUpload,
}

#[derive(Subcommand)]
enum TracerCmd {
    /// Exit non-zero, saying what to do, when tracing cannot work here.
    Check,
}

#[derive(Subcommand)]
enum CollectorCmd {
    /// Start it (programs under LD_PRELOAD also start it when needed).
    Start,
    /// Stop it; jobs still running are recorded as incomplete.
    Stop,
    /// Whether it runs (exit 3 when not).
    Status,
}

#[derive(Subcommand)]
enum ScopeCmd {
    /// The scope in use.
    Show,
    /// Set it: anonymous, public, private or OWNER/PROJECT.
    Use { scope: String },
}

#[derive(Subcommand)]
enum LabelCmd {
    /// Set labels: `roar label set job @2 lr=0.001 metrics.accuracy=0.94`.
    Set {
        /// job, artifact or dag.
        kind: String,
        /// @N or uid prefix; path or hash prefix; current or session hash prefix.
        target: String,
        /// Dotted keys nest; values are numbers, true/false or strings ("10" stays a string).
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// The current labels, one key=value per line.
    Show {
        kind: String,
        target: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Every kept version, oldest first, with time and origin.
    History {
        kind: String,
        target: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove keys (a nested key removes everything under it).
    #[command(alias = "unset")]
    Rm {
        kind: String,
        target: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// Copy one target's labels onto another, as its new version.
    Cp {
        src_kind: String,
        src: String,
        dst_kind: String,
        dst: String,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print one key's value (its default when unset).
    Get { key: String },
    /// Set one key, e.g. `roar config set filters.ignore_tmp_files false`.
    Set { key: String, value: String },
    /// Every key with its value and what it does.
    List(JsonFlag),
}

fn cwd() -> Result<PathBuf> {
    std::env::current_dir()
        .map_err(|e| CliError::failure(format!("cannot read the current directory: {e}")))
}

fn traced(args: RunArgs, kind: &'static str) -> Result<i32> {
    run::run(run::RunOptions {
        argv: args.command,
        kind,
        quiet: args.quiet,
        verbose: args.verbose,
    })
}

fn init() -> Result<i32> {
    let done = project::init(&cwd()?)?;
    let dir = done.project.dir();
    if done.created {
        outln!("initialised roar project in {}", dir.display());
    } else {
        outln!("roar project already initialised in {}", dir.display());
    }
    if let Some(g) = done.gitignore {
        outln!("added .roar/ to {}", g.display());
    }
    Ok(0)
}

fn config(c: ConfigCmd) -> Result<i32> {
    let project = Project::find(&cwd()?)?;
    match c {
        ConfigCmd::Get { key } => config_cmd::get(&project, &key)?,
        ConfigCmd::Set { key, value } => config_cmd::set(&project, &key, &value)?,
        ConfigCmd::List(f) => config_cmd::list(&project, f.json)?,
    }
    Ok(0)
}

/// The read-only queries over the lineage database.
fn query(cmd: Cmd) -> Result<i32> {
    let cwd = cwd()?;
    let project = Project::find(&cwd)?;
    spool::recover_orphans(&project);
    let store = project.open_store()?;
    match cmd {
        Cmd::Log(f) => show::log(&store, f.json)?,
        Cmd::Status(f) => show::status(&store, &project.root, f.json)?,
        Cmd::Show {
            target,
            verbose,
            json,
        } => show::show(&store, &cwd, &project.root, &target, json.json, verbose)?,
        Cmd::Dag(f) => dag::dag(&store, &project.root, f.format()?)?,
        Cmd::Lineage {
            target,
            depth,
            format,
        } => lineage::lineage(
            &store,
            &cwd,
            &project.root,
            &target,
            depth,
            format.format()?,
        )?,
        Cmd::Inputs {
            target,
            unsourced,
            json,
        } => lineage::inputs(&store, &cwd, &project.root, &target, unsourced, json.json)?,
        Cmd::Diff { a, b, json } => diff::diff(&store, &cwd, &project.root, &a, &b, json.json)?,
        Cmd::Search {
            predicate,
            kind,
            sort,
            desc,
            top,
            json,
        } => search_cmd::search(
            &store,
            search_cmd::SearchOptions {
                query: &predicate,
                kind: kind.as_deref(),
                sort: sort.as_deref(),
                desc,
                top,
                json: json.json,
            },
        )?,
        Cmd::Init
        | Cmd::Run(_)
        | Cmd::Build(_)
        | Cmd::Config(_)
        | Cmd::Label(_)
        | Cmd::Reset
        | Cmd::Pop { .. }
        | Cmd::Register { .. }
        | Cmd::Scope(_)
        | Cmd::Login { .. }
        | Cmd::Logout
        | Cmd::Whoami
        | Cmd::Collector(_)
        | Cmd::Completions { .. }
        | Cmd::Tracer { .. }
        | Cmd::Env { .. }
        | Cmd::Telemetry(_)
        | Cmd::TelemetryUpload => {
            unreachable!("dispatched elsewhere")
        }
    }
    Ok(0)
}

fn label(c: LabelCmd) -> Result<i32> {
    let cwd = cwd()?;
    let project = Project::find(&cwd)?;
    spool::recover_orphans(&project);
    let mut store = project.open_store()?;
    let resolve = |store: &_, kind: &str, name: &str| label_cmd::resolve(store, &cwd, kind, name);
    match c {
        LabelCmd::Set {
            kind,
            target,
            pairs,
        } => {
            let t = resolve(&store, &kind, &target)?;
            label_cmd::set(&mut store, &project, &t, &pairs)?
        }
        LabelCmd::Show { kind, target, json } => {
            label_cmd::show(&store, &resolve(&store, &kind, &target)?, json.json)?
        }
        LabelCmd::History { kind, target, json } => {
            label_cmd::history(&store, &resolve(&store, &kind, &target)?, json.json)?
        }
        LabelCmd::Rm { kind, target, keys } => {
            let t = resolve(&store, &kind, &target)?;
            label_cmd::rm(&mut store, &project, &t, &keys)?
        }
        LabelCmd::Cp {
            src_kind,
            src,
            dst_kind,
            dst,
        } => {
            let src = resolve(&store, &src_kind, &src)?;
            let dst = resolve(&store, &dst_kind, &dst)?;
            label_cmd::cp(&mut store, &project, &src, &dst)?
        }
    }
    Ok(0)
}

/// GLaaS: registration and the account.
fn glaas_cmd(cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Login { token } => {
            let path = glaas::auth::login(&token)?;
            outln!("token saved to {}", path.display());
            return Ok(0);
        }
        Cmd::Logout => {
            if glaas::auth::logout()? {
                outln!("logged out");
            } else {
                outln!("no saved token");
            }
            return Ok(0);
        }
        _ => {}
    }
    let cwd = cwd()?;
    let project = Project::find(&cwd)?;
    match cmd {
        Cmd::Whoami => glaas::whoami(&project)?,
        Cmd::Scope(ScopeCmd::Show) => glaas::scope_show(&project)?,
        Cmd::Scope(ScopeCmd::Use { scope }) => glaas::scope_use(&project, &scope)?,
        Cmd::Register {
            target,
            dry_run,
            yes,
        } => {
            spool::recover_orphans(&project);
            let mut store = project.open_store()?;
            glaas::register(
                &mut store,
                &project,
                &cwd,
                glaas::RegisterOptions {
                    target: &target,
                    dry_run,
                    yes,
                },
            )?
        }
        _ => unreachable!("dispatched elsewhere"),
    }
    Ok(0)
}

fn launcher(cmd: Cmd) -> Result<i32> {
    let project = Project::find(&cwd()?)?;
    match cmd {
        Cmd::Collector(CollectorCmd::Start) => collector_cmd::start(&project)?,
        Cmd::Collector(CollectorCmd::Stop) => collector_cmd::stop(&project)?,
        Cmd::Collector(CollectorCmd::Status) => return collector_cmd::status(&project),
        Cmd::Env { shell } => collector_cmd::env(&project, &shell)?,
        _ => unreachable!("dispatched elsewhere"),
    }
    Ok(0)
}

/// Commands that change the session.
fn session(cmd: Cmd) -> Result<i32> {
    let project = Project::find(&cwd()?)?;
    spool::recover_orphans(&project);
    let mut store = project.open_store()?;
    match cmd {
        Cmd::Reset => session_cmd::reset(&mut store)?,
        Cmd::Pop { yes } => session_cmd::pop(&mut store, yes)?,
        _ => unreachable!("dispatched elsewhere"),
    }
    Ok(0)
}

fn dispatch(cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Init => init(),
        Cmd::Tracer { check } => tracer_cmd::tracer(check.is_some()),
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "roar", &mut out);
            out::print(&String::from_utf8_lossy(&out));
            Ok(0)
        }
        cmd @ (Cmd::Reset | Cmd::Pop { .. }) => session(cmd),
        cmd @ (Cmd::Collector(_) | Cmd::Env { .. }) => launcher(cmd),
        cmd @ (Cmd::Register { .. }
        | Cmd::Scope(_)
        | Cmd::Login { .. }
        | Cmd::Logout
        | Cmd::Whoami) => glaas_cmd(cmd),
        Cmd::Label(c) => label(c),
        Cmd::Run(args) => traced(args, "run"),
        Cmd::Build(args) => traced(args, "build"),
        Cmd::Config(c) => config(c),
        Cmd::Telemetry(args) => telemetry::command(args),
        Cmd::TelemetryUpload => Ok(telemetry::upload_queued()),
        query_cmd => query(query_cmd),
    }
}

/// What telemetry counts for a command; `None` for `roar telemetry` itself
/// and the uploader, which are never counted.
fn counted(cmd: &Cmd) -> Option<telemetry::Command> {
    use telemetry::Command as T;
    Some(match cmd {
        Cmd::Init => T::Init,
        Cmd::Run(_) => T::Run,
        Cmd::Build(_) => T::Build,
        Cmd::Log(_) => T::Log,
        Cmd::Status(_) => T::Status,
        Cmd::Show { .. } => T::Show,
        Cmd::Dag(_) => T::Dag,
        Cmd::Lineage { .. } => T::Lineage,
        Cmd::Inputs { .. } => T::Inputs,
        Cmd::Diff { .. } => T::Diff,
        Cmd::Reset => T::Reset,
        Cmd::Register { dry_run, .. } => T::Register { dry_run: *dry_run },
        Cmd::Pop { .. }
        | Cmd::Config(_)
        | Cmd::Label(_)
        | Cmd::Search { .. }
        | Cmd::Scope(_)
        | Cmd::Login { .. }
        | Cmd::Logout
        | Cmd::Whoami
        | Cmd::Collector(_)
        | Cmd::Tracer { .. }
        | Cmd::Completions { .. }
        | Cmd::Env { .. } => T::Other,
        Cmd::Telemetry(_) | Cmd::TelemetryUpload => return None,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let counted = counted(&cli.command);
    let result = dispatch(cli.command);
    if let Some(cmd) = counted {
        telemetry::record(cmd, &result);
    }
    match result {
        Ok(status) => ExitCode::from((status & 0xff) as u8),
        Err(e) => {
            eprintln!("{} {e}", colour::error_prefix());
            ExitCode::from(e.code)
        }
    }
}
