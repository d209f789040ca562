//! GLaaS: `roar register`, `roar scope`, `roar login|logout|whoami`. The
//! wire format is documented in docs/glaas-api.md.

pub mod auth;
mod client;
mod payload;
mod redact;

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use roar_collector::config::Config;
use roar_collector::store::Store;
use serde_json::{json, Value};

use crate::error::{CliError, Result};
use crate::human::safe;
use crate::out::outln;
use crate::project::Project;
use client::Client;
use redact::Redactor;

const API: &str = "/api/v1";

fn config(project: &Project) -> Result<Config> {
    Config::load(&project.config_path()).map_err(CliError::usage)
}

/// `GLAAS_API_URL`, else `glaas.url`.
fn base_url(config: &Config) -> String {
    std::env::var("GLAAS_API_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| config.text("glaas.url"))
}

fn valid_scope(scope: &str) -> bool {
    let name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!(scope, "anonymous" | "public" | "private")
        || scope
            .split_once('/')
            .is_some_and(|(o, p)| name(o) && name(p))
}

pub fn scope_show(project: &Project) -> Result<()> {
    let c = config(project)?;
    let (scope, default) = c.get("glaas.scope").map_err(CliError::failure)?;
    let token = auth::token()?.is_some();
    outln!(
        "{scope}{}; {}",
        if default { " (default)" } else { "" },
        if token {
            "logged in"
        } else {
            "no token: registration is anonymous and public"
        }
    );
    Ok(())
}

pub fn scope_use(project: &Project, scope: &str) -> Result<()> {
    if !valid_scope(scope) {
        return Err(CliError::usage(format!(
            "{}: a scope is anonymous, public, private or OWNER/PROJECT",
            safe(scope)
        )));
    }
    let mut c = config(project)?;
    c.set("glaas.scope", scope).map_err(CliError::usage)?;
    c.save(&project.config_path()).map_err(CliError::failure)?;
    outln!("scope: {scope}");
    Ok(())
}

pub fn whoami(project: &Project) -> Result<()> {
    let token = auth::token()?.ok_or_else(|| {
        CliError::usage("not logged in: `roar login --token TOKEN` or set ROAR_GLAAS_TOKEN")
    })?;
    let client = Client::new(&base_url(&config(project)?), Some(token))?;
    let me = client.get(&format!("{API}/auth/me"))?;
    let name = ["username", "login", "email", "name"]
        .iter()
        .find_map(|k| me.get(k).and_then(Value::as_str));
    match name {
        Some(n) => outln!("{} on {}", safe(n), client.base()),
        None => outln!("{}", safe(&me.to_string())),
    }
    Ok(())
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!("{question}: pass -y to confirm")));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub struct RegisterOptions<'a> {
    pub target: &'a [String],
    pub dry_run: bool,
    pub yes: bool,
}

pub fn register(
    store: &mut Store,
    project: &Project,
    cwd: &Path,
    o: RegisterOptions,
) -> Result<()> {
    let config = config(project)?;
    let redactor = Redactor::from_config(&config).map_err(CliError::usage)?;
    let base = base_url(&config);
    let token = auth::token()?;
    let mut scope = config.text("glaas.scope");
    if token.is_none() {
        if scope != "anonymous" && scope != "public" {
            return Err(CliError::usage(format!(
                "scope {scope} needs an account: `roar login --token TOKEN`, or `roar scope use anonymous`"
            )));
        }
        scope = "anonymous".into();
    }
    let client = Client::new(&base, token.clone())?;
    let sel = payload::select(store, cwd, o.target)?;
    let server = client.base().to_string();
    // What a server accepted under one scope says nothing of another (a
    // private record is not a public one): state is kept per scope.
    let account = format!("{server} ({scope})");
    let state = store.registration(&account, &sel.key)?;
    // Items the server accepted: skipped.
    let probe = |keys: &[String]| store.registered_items(&account, keys);
    let (all, _) = payload::requests(store, &sel, &scope, &|_| false)?;
    let keys: Vec<String> = all.iter().flat_map(|r| r.items.clone()).collect();
    let accepted = probe(&keys)?;
    let (mut requests, mut finalize) =
        payload::requests(store, &sel, &scope, &|k| accepted.contains(k))?;
    if let Some(reg) = &state {
        if let (Some((hash, url)), true) = (&reg.finalized, requests.is_empty()) {
            outln!(
                "already registered on {server}: lineage {hash}{}",
                url.as_deref().map(|u| format!("  {u}")).unwrap_or_default()
            );
            return Ok(());
        }
    }
    let mode = if token.is_some() {
        "authenticated"
    } else {
        "anonymous_public"
    };
    // Resume an interrupted registration with the same client session id.
    let client_session_id = match &state {
        Some(r) if r.finalized.is_none() => r.client_session_id.clone(),
        _ => roar_collector::store::random_hex(16),
    };
    let mut open = json!({"client_session_id": client_session_id, "mode": mode});
    for r in &mut requests {
        redactor.json(&mut r.body);
    }
    redactor.json(&mut finalize);
    redactor.json(&mut open);

    if o.dry_run {
        let sessions = format!("{API}/registration-sessions");
        let show = |path: &str, body: &Value| {
            outln!("POST {path}");
            outln!(
                "{}",
                serde_json::to_string_pretty(body).expect("JSON prints")
            );
        };
        show(&sessions, &open);
        for r in &requests {
            show(&format!("{sessions}/{{id}}{}", r.path), &r.body);
        }
        show(&format!("{sessions}/{{id}}/finalize"), &finalize);
        return Ok(());
    }
    if token.is_none()
        && !o.yes
        && !confirm(&format!(
            "no GLaaS token: register {} anonymously, readable by anyone?",
            sel.key
        ))?
    {
        eprintln!("roar: nothing registered");
        return Ok(());
    }

    store.begin_registration(&account, &sel.key, &client_session_id)?;
    let created = client.post(&format!("{API}/registration-sessions"), &open)?;
    let id = created
        .get("id")
        .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
        .ok_or_else(|| CliError::failure("the server's registration session has no id"))?;
    store.set_registration_remote_id(&account, &sel.key, &id)?;
    let sent = requests.len();
    for r in &requests {
        client.post(
            &format!("{API}/registration-sessions/{id}{}", r.path),
            &r.body,
        )?;
        store.mark_registered(&account, &r.items)?;
    }
    let done = client.post(
        &format!("{API}/registration-sessions/{id}/finalize"),
        &finalize,
    )?;
    let hash = done
        .get("lineage_hash")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::failure("the server finalized without a lineage_hash"))?;
    let url = done.get("url").and_then(Value::as_str);
    store.finish_registration(&account, &sel.key, hash, url)?;
    outln!(
        "registered {} ({sent} requests) on {server}: lineage {}{}",
        sel.key,
        safe(hash),
        url.map(|u| format!("\n  {}", safe(u))).unwrap_or_default()
    );
    Ok(())
}
