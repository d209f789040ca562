//! Git state of a working directory, read with the `git` command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use roar_protocol::GitInfo;

fn git(cwd: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env_remove(roar_protocol::env::PRELOAD)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

pub fn toplevel(cwd: &Path) -> Option<PathBuf> {
    git(cwd, &["rev-parse", "--show-toplevel"]).map(PathBuf::from)
}

/// Commit, branch and dirty flag (tracked files changed), or None outside a
/// repository. A repository without commits has no commit.
pub fn info(cwd: &Path) -> Option<GitInfo> {
    let repo_root = git(cwd, &["rev-parse", "--show-toplevel"])?;
    let commit = git(cwd, &["rev-parse", "--verify", "-q", "HEAD"]);
    let branch = git(cwd, &["symbolic-ref", "-q", "--short", "HEAD"]);
    let dirty =
        git(cwd, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(GitInfo {
        commit,
        branch,
        dirty,
        repo_root: Some(repo_root),
    })
}
