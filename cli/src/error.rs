//! One error type for the CLI: a message for one stderr line and an exit code.

use std::fmt;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

/// Exit code for usage errors and a missing project, as clap uses.
pub const USAGE: u8 = 2;

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(1, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The database roar opened last, to name it (and who holds it) in errors.
static DATABASE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

pub fn opened_database(path: &std::path::Path) {
    let _ = DATABASE.set(path.to_path_buf());
}

/// Processes other than this one with `db` open (from /proc), as
/// `pid N (command)`.
fn holders(db: &std::path::Path) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid = p.file_name().into_string().ok()?;
            if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let holds = std::fs::read_dir(p.path().join("fd"))
                .ok()?
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == db));
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd: Vec<String> = cmd
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            holds.then(|| format!("pid {pid} ({})", crate::human::safe(&cmd.join(" "))))
        })
        .collect()
}

impl From<roar_collector::store::Error> for CliError {
    fn from(e: roar_collector::store::Error) -> Self {
        use roar_collector::store::ErrorCode;
        let busy = matches!(
            e.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        );
        match DATABASE.get() {
            Some(db) if busy => {
                let who = holders(db);
                let who = if who.is_empty() {
                    "another process".to_string()
                } else {
                    who.join(", ")
                };
                CliError::failure(format!(
                    "{} stayed locked for 30 s by {who}; wait for it to finish, or stop it",
                    db.display()
                ))
            }
            _ => CliError::failure(format!("database error: {e}")),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_names_the_processes_with_the_file_open() {
        let dir = std::env::temp_dir().join(format!("roar-holders-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("roar.db");
        std::fs::write(&db, "").unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3<roar.db; sleep 5")
            .current_dir(&dir)
            .spawn()
            .unwrap();
        let want = format!("pid {} (sh -c exec 3<roar.db; sleep 5)", child.id());
        let mut found = vec![];
        for _ in 0..100 {
            found = holders(&db);
            if found.contains(&want) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(found.contains(&want), "{found:?}");
    }
}
