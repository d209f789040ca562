//! Neptune: each run keeps a folder `.neptune/MODE/TYPE__UUID__PID__RAND/`
//! (MODE offline, async or sync). The run id is the container UUID, taken
//! from the path itself: an async run's folder is removed when it stops
//! cleanly. Offline, the human `sys/id` and the project are assigned only
//! at sync time, so there is no URL.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::TrackerRun;

/// How much of the operation log's first line is read for the run name.
const NAME_LINE_MAX: u64 = 64 * 1024;

/// (container folder, container id) of a path under `.neptune/`.
fn locate(path: &Path) -> Option<(PathBuf, String)> {
    let dir = path.ancestors().find(|d| {
        d.parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|n| n == ".neptune")
    })?;
    let name = dir.file_name()?.to_str()?;
    let mut parts = name.split("__");
    let kind = parts.next()?;
    let id = parts.next()?;
    let known = ["run", "model", "model_version", "project"].contains(&kind);
    (known && !id.is_empty()).then(|| (dir.to_path_buf(), id.to_string()))
}

/// The run name: the first operation of `data-1.log` assigns `sys/name`.
fn run_name(dir: &Path) -> Option<String> {
    let file = std::fs::File::open(dir.join("data-1.log")).ok()?;
    let mut line = String::new();
    BufReader::new(file.take(NAME_LINE_MAX))
        .read_line(&mut line)
        .ok()?;
    let op: serde_json::Value = serde_json::from_str(&line).ok()?;
    let obj = &op["obj"];
    let names_run =
        obj["type"] == "AssignString" && obj["path"] == serde_json::json!(["sys", "name"]);
    names_run
        .then(|| obj["value"].as_str().map(str::to_string))
        .flatten()
}

pub fn runs(touched: &[&Path]) -> Vec<TrackerRun> {
    let dirs: BTreeMap<PathBuf, String> = touched.iter().filter_map(|p| locate(p)).collect();
    dirs.into_iter()
        .map(|(dir, id)| TrackerRun {
            tracker: "neptune".into(),
            run_id: id,
            project: None,
            name: run_name(&dir),
            url: None,
            path: dir.display().to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_from_container_folders() {
        let root = crate::trackers::fixture("neptune_offline/.neptune/offline");
        let named = root.join("run__ca565906-2366-4d4b-a4f1-ce2311428e45__20880__6lt9m82n");
        // An async run's folder, gone after the job: the path still names it.
        let gone = Path::new(
            "/p/.neptune/async/run__0d5c2d7e-1111-4a4a-9b9b-123456789abc__7__abcdefgh/data-1.log",
        );
        let got = runs(&[
            &named.join("data-1.log"),
            &named.join("metadata.json"),
            gone,
            Path::new("/p/.neptune/sync"),
        ]);
        assert_eq!(got.len(), 2, "{got:?}");
        let named_run = got
            .iter()
            .find(|r| r.run_id.starts_with("ca565906"))
            .unwrap();
        assert_eq!(named_run.name.as_deref(), Some("my-named-run"));
        assert!(got
            .iter()
            .any(|r| r.run_id == "0d5c2d7e-1111-4a4a-9b9b-123456789abc" && r.name.is_none()));
    }
}
