//! Where the shim and the collector are installed.

use std::path::{Path, PathBuf};

use crate::error::{CliError, Result};

#[cfg(target_os = "macos")]
pub const SHIM_FILE: &str = "libroar.dylib";
#[cfg(not(target_os = "macos"))]
pub const SHIM_FILE: &str = "libroar.so";

const COLLECTOR_FILE: &str = "roar-collector";

fn exe_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = exe.canonicalize().unwrap_or(exe);
    exe.parent().map(Path::to_path_buf)
}

/// Next to `roar`, then `../lib/roar/`, then `$ROAR_SHIM`.
pub fn shim() -> Result<PathBuf> {
    let mut tried = Vec::new();
    if let Some(dir) = exe_dir() {
        tried.push(dir.join(SHIM_FILE));
        tried.push(dir.join("../lib/roar").join(SHIM_FILE));
    }
    if let Some(p) = std::env::var_os(roar_protocol::env::SHIM) {
        tried.push(PathBuf::from(p));
    }
    tried
        .iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .ok_or_else(|| {
            let places: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            CliError::failure(format!(
                "cannot find {SHIM_FILE} (looked in: {}); reinstall with scripts/install.sh or set {}=/path/to/{SHIM_FILE}",
                places.join(", "),
                roar_protocol::env::SHIM
            ))
        })
}

/// Next to `roar`, then on `PATH`.
pub fn collector() -> Result<PathBuf> {
    let beside = exe_dir().map(|d| d.join(COLLECTOR_FILE));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(COLLECTOR_FILE))
            .find(|p| p.is_file())
    });
    beside
        .filter(|p| p.is_file())
        .or(on_path)
        .ok_or_else(|| {
            CliError::failure(format!(
                "cannot find {COLLECTOR_FILE} next to roar or on PATH; reinstall with scripts/install.sh"
            ))
        })
}
