//! Finding and creating the `.roar/` folder of a project.

use std::io::Write;
use std::path::{Path, PathBuf};

use roar_collector::store::Store;

use crate::error::{CliError, Result};

pub const DIR: &str = ".roar";

pub struct Project {
    /// The folder that holds `.roar/`.
    pub root: PathBuf,
}

const CONFIG_HEADER: &str = "\
# roar project configuration.
# Keys are added here by `roar config set`; absent keys take their defaults.
";

impl Project {
    /// The nearest project at or above `cwd`; exit 2 with the fix otherwise.
    pub fn find(cwd: &Path) -> Result<Project> {
        cwd.ancestors()
            .find(|dir| dir.join(DIR).is_dir())
            .map(|root| Project {
                root: root.to_path_buf(),
            })
            .ok_or_else(|| {
                CliError::usage(format!(
                    "not inside a roar project (no {DIR}/ in {} or above); run `roar init` first",
                    cwd.display()
                ))
            })
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(DIR)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.toml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir().join("roar.db")
    }

    pub fn open_store(&self) -> Result<Store> {
        crate::error::opened_database(&self.db_path());
        Store::open(&self.db_path()).map_err(|e| {
            CliError::failure(format!("cannot open {}: {e}", self.db_path().display()))
        })
    }
}

/// What `roar init` did, for its one-line report.
pub struct Initialised {
    pub project: Project,
    pub created: bool,
    pub gitignore: Option<PathBuf>,
}

pub fn init(cwd: &Path) -> Result<Initialised> {
    let project = Project {
        root: cwd.to_path_buf(),
    };
    let dir = project.dir();
    let created = !dir.is_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    // Private: the database, the collector's socket and its log name the
    // user's files.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    let config = project.config_path();
    if !config.exists() {
        std::fs::write(&config, CONFIG_HEADER)
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", config.display())))?;
    }
    project.open_store()?;
    let gitignore = match roar_collector::git::toplevel(cwd) {
        Some(top) => ignore_in_git(&top)?,
        None => None,
    };
    Ok(Initialised {
        project,
        created,
        gitignore,
    })
}

/// Adds `.roar/` to the repository's `.gitignore` unless already there;
/// returns the file when it was changed.
fn ignore_in_git(top: &Path) -> Result<Option<PathBuf>> {
    let path = top.join(".gitignore");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let entry = format!("{DIR}/");
    if existing
        .lines()
        .any(|l| matches!(l.trim(), ".roar" | ".roar/" | "/.roar" | "/.roar/"))
    {
        return Ok(None);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| CliError::failure(format!("cannot update {}: {e}", path.display())))?;
    let sep = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    writeln!(f, "{sep}{entry}")
        .map_err(|e| CliError::failure(format!("cannot update {}: {e}", path.display())))?;
    Ok(Some(path))
}
