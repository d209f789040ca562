//! `roar config get|set|list`.

use roar_collector::config::{Config, KEYS};
use serde_json::json;

use crate::error::{CliError, Result};
use crate::out::outln;
use crate::project::Project;
use crate::view;

fn load(project: &Project) -> Result<Config> {
    Config::load(&project.config_path()).map_err(CliError::usage)
}

pub fn get(project: &Project, key: &str) -> Result<()> {
    let (value, _) = load(project)?.get(key).map_err(CliError::usage)?;
    outln!("{value}");
    Ok(())
}

/// Validates before writing: an unknown key or ill-typed value leaves the
/// file as it was.
pub fn set(project: &Project, key: &str, value: &str) -> Result<()> {
    let mut config = load(project)?;
    config.set(key, value).map_err(CliError::usage)?;
    config
        .save(&project.config_path())
        .map_err(CliError::failure)?;
    outln!("{key} = {value}");
    Ok(())
}

pub fn list(project: &Project, as_json: bool) -> Result<()> {
    let config = load(project)?;
    let mut rows = Vec::new();
    for spec in KEYS {
        let (value, default) = config.get(spec.name).map_err(CliError::failure)?;
        rows.push((spec, value, default));
    }
    if as_json {
        let keys: Vec<_> = rows
            .iter()
            .map(|(spec, value, default)| {
                json!({"key": spec.name, "value": value, "default": default, "doc": spec.doc})
            })
            .collect();
        view::print_json(&json!(keys));
        return Ok(());
    }
    for (spec, value, default) in rows {
        let origin = if default { "  (default)" } else { "" };
        outln!("{} = {value}{origin}\n    {}", spec.name, spec.doc);
    }
    Ok(())
}
