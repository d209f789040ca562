//! The GLaaS token: `ROAR_GLAAS_TOKEN`, else the one `roar login` saved in
//! the user's config dir (`$XDG_CONFIG_HOME/roar/glaas-token`, mode 0600).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use crate::error::{CliError, Result};

pub const TOKEN_ENV: &str = "ROAR_GLAAS_TOKEN";

fn token_file() -> Result<PathBuf> {
    dirs::config_dir()
        .map(|d| d.join("roar").join("glaas-token"))
        .ok_or_else(|| {
            CliError::failure(
                "cannot tell where your config directory is (set HOME or XDG_CONFIG_HOME)",
            )
        })
}

pub fn token() -> Result<Option<String>> {
    if let Some(t) = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some(t.trim().to_string()));
    }
    match std::fs::read_to_string(token_file()?) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::failure(format!(
            "cannot read your GLaaS token: {e}"
        ))),
    }
}

pub fn login(token: &str) -> Result<PathBuf> {
    let token = token.trim();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return Err(CliError::usage("the token is empty or contains spaces"));
    }
    let path = token_file()?;
    let fail = |e: std::io::Error| {
        CliError::failure(format!("cannot save the token to {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // Created private; an existing file is made private too before writing.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(fail)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    f.write_all(format!("{token}\n").as_bytes()).map_err(fail)?;
    Ok(path)
}

/// Whether a saved token was removed.
pub fn logout() -> Result<bool> {
    match std::fs::remove_file(token_file()?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::failure(format!(
            "cannot remove your GLaaS token: {e}"
        ))),
    }
}
