//! W&B: a run lives in `wandb/run-YYYYMMDD_HHMMSS-ID/` (online) or
//! `wandb/offline-run-...-ID/`. Its `run-ID.wandb` log starts with a
//! RunRecord (run id, entity, project, display name); online, the entity is
//! assigned by the server and appears only in `logs/debug.log`.
//!
//! Most of a run folder is written by W&B's Go service (`wandb-core`),
//! which the preload library cannot see, so the folders are found from the
//! paths the job's Python side touched and read after the job.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::TrackerRun;

/// The part of a `.wandb` log read: the run record comes second, after a
/// short header record.
const LOG_PREFIX: u64 = 64 * 1024;
const LOG_MAGIC: &[u8] = b":W&B\xe1\xbe\x00";
const BLOCK: usize = 32 * 1024;
const CHUNK_HEADER: usize = 7;

/// `(online, run id)` of a run folder name.
fn run_dir_name(name: &str) -> Option<(bool, &str)> {
    let (online, rest) = match name.strip_prefix("offline-run-") {
        Some(rest) => (false, rest),
        None => (true, name.strip_prefix("run-")?),
    };
    // YYYYMMDD_HHMMSS-ID
    let (stamp, id) = rest.split_at_checked(15)?;
    let id = id.strip_prefix('-')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = stamp.as_bytes()[8] == b'_' && digits(&stamp[..8]) && digits(&stamp[9..]);
    (ok && !id.is_empty()).then_some((online, id))
}

/// The run folder `path` lies in: a `run-…`/`offline-run-…` component
/// right under a `wandb/` (or `.wandb/`) folder.
fn run_dir_of(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|dir| {
            let named_run = dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| run_dir_name(n).is_some());
            let parent = dir.parent().and_then(Path::file_name);
            named_run && parent.is_some_and(|p| p == "wandb" || p == ".wandb")
        })
        .map(Path::to_path_buf)
}

/// The runs whose folders the job touched. The SDK itself (Python) opens
/// `logs/debug.log` in each run folder it makes, so a run is found even
/// when the Go service wrote everything else. `wandb/latest-run` and the
/// like are not used: they point at the newest run of any job.
pub fn runs(touched: &[&Path]) -> Vec<TrackerRun> {
    let dirs: BTreeSet<PathBuf> = touched.iter().filter_map(|p| run_dir_of(p)).collect();
    dirs.iter().filter_map(|d| run(d)).collect()
}

/// The id in the name of the folder's `run-ID.wandb` log (the folder name
/// may carry a suffix), else the one in the folder name.
fn run_id(dir: &Path, from_name: &str) -> String {
    let logged = std::fs::read_dir(dir).ok().and_then(|entries| {
        entries.flatten().find_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_prefix("run-")?.strip_suffix(".wandb")?;
            (!id.is_empty()).then(|| id.to_string())
        })
    });
    logged.unwrap_or_else(|| from_name.to_string())
}

fn run(dir: &Path) -> Option<TrackerRun> {
    let (online, from_name) = run_dir_name(dir.file_name()?.to_str()?)?;
    let id = run_id(dir, from_name);
    let record = read_run_record(&dir.join(format!("run-{id}.wandb"))).unwrap_or_default();
    let entity = record
        .entity
        .or_else(|| entity_from_debug_log(&dir.join("logs/debug.log"), &id));
    let project = record.project;
    let url = match (&entity, &project) {
        // An offline run is on the server only once synced.
        (Some(e), Some(p)) if online => Some(format!("https://wandb.ai/{e}/{p}/runs/{id}")),
        _ => None,
    };
    Some(TrackerRun {
        tracker: "wandb".into(),
        run_id: id,
        project: match (entity, project) {
            (Some(e), Some(p)) => Some(format!("{e}/{p}")),
            (None, p) => p,
            (Some(e), None) => Some(e),
        },
        name: record.display_name,
        url,
        path: dir.display().to_string(),
    })
}

/// What a RunRecord says about its run; empty strings count as absent.
#[derive(Debug, Default, PartialEq)]
struct RunRecord {
    run_id: Option<String>,
    entity: Option<String>,
    project: Option<String>,
    display_name: Option<String>,
}

/// The first RunRecord of a `.wandb` log: a LevelDB-style log of protobuf
/// `Record`s in 32 KiB blocks after a 7-byte header; the run is field 17.
fn read_run_record(path: &Path) -> Option<RunRecord> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(LOG_PREFIX)
        .read_to_end(&mut data)
        .ok()?;
    if !data.starts_with(LOG_MAGIC) {
        return None;
    }
    for record in log_records(&data) {
        if let Some(run) = proto_fields(&record).find_map(|(field, v)| match (field, v) {
            (17, Wire::Bytes(run)) => Some(run),
            _ => None,
        }) {
            return Some(parse_run(run));
        }
    }
    None
}

/// Reassembled record payloads of a LevelDB-style log (chunks: u32 CRC,
/// u16 length, u8 type 1 full / 2 first / 3 middle / 4 last). CRCs are not
/// checked: a damaged record at worst yields no run.
fn log_records(data: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut partial = Vec::new();
    let mut pos = LOG_MAGIC.len();
    while pos + CHUNK_HEADER <= data.len() {
        let left_in_block = BLOCK - pos % BLOCK;
        if left_in_block < CHUNK_HEADER {
            pos += left_in_block; // block trailer padding
            continue;
        }
        let len = u16::from_le_bytes([data[pos + 4], data[pos + 5]]) as usize;
        let kind = data[pos + 6];
        let start = pos + CHUNK_HEADER;
        let Some(payload) = data.get(start..start + len) else {
            break;
        };
        match kind {
            1 => records.push(payload.to_vec()),
            2 => partial = payload.to_vec(),
            3 => partial.extend_from_slice(payload),
            4 => {
                partial.extend_from_slice(payload);
                records.push(std::mem::take(&mut partial));
            }
            _ => break,
        }
        pos = start + len;
    }
    records
}

enum Wire<'a> {
    Varint,
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The top-level fields of a protobuf message, stopping at malformed input.
fn proto_fields(data: &[u8]) -> impl Iterator<Item = (u64, Wire<'_>)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let tag = varint(data, &mut pos)?;
        let wire = match tag & 7 {
            0 => varint(data, &mut pos).map(|_| Wire::Varint)?,
            1 | 5 => {
                pos += if tag & 7 == 1 { 8 } else { 4 };
                (pos <= data.len()).then_some(Wire::Fixed)?
            }
            2 => {
                let len = usize::try_from(varint(data, &mut pos)?).ok()?;
                let bytes = data.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Wire::Bytes(bytes)
            }
            _ => return None,
        };
        Some((tag >> 3, wire))
    })
}

fn parse_run(data: &[u8]) -> RunRecord {
    let mut run = RunRecord::default();
    for (field, value) in proto_fields(data) {
        let Wire::Bytes(b) = value else { continue };
        let text = String::from_utf8_lossy(b).into_owned();
        if text.is_empty() {
            continue;
        }
        match field {
            1 => run.run_id = Some(text),
            2 => run.entity = Some(text),
            3 => run.project = Some(text),
            8 => run.display_name = Some(text),
            _ => {}
        }
    }
    run
}

/// Online runs learn their entity from the server; the SDK's log says
/// `finishing run ENTITY/PROJECT/ID`.
fn entity_from_debug_log(path: &Path, id: &str) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(LOG_PREFIX)
        .read_to_string(&mut text)
        .ok()?;
    // The last such line: a resumed run logs one per session.
    text.lines().rev().find_map(|line| {
        let run = line.split("finishing run ").nth(1)?.trim();
        let mut parts = run.splitn(3, '/');
        let (entity, _project, run_id) = (parts.next()?, parts.next()?, parts.next()?);
        (run_id == id && !entity.is_empty()).then(|| entity.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trackers::fixture;

    #[test]
    fn run_folder_names() {
        assert_eq!(
            run_dir_name("run-20261123_135649-xhjan7zb"),
            Some((true, "xhjan7zb"))
        );
        assert_eq!(
            run_dir_name("offline-run-20261123_135005-pnomyz75"),
            Some((false, "pnomyz75"))
        );
        for not in [
            "latest-run",
            "run-2026-x",
            "run-20261123_135649-",
            "debug.log",
        ] {
            assert_eq!(run_dir_name(not), None, "{not}");
        }
    }

    #[test]
    fn offline_run_record_names_entity_and_project() {
        let dir = fixture("wandb_offline/wandb/offline-run-20261123_135005-pnomyz75");
        let got = runs(&[&dir.join("logs/debug.log"), &dir.join("files")]);
        assert_eq!(got.len(), 1, "{got:?}");
        let r = &got[0];
        assert_eq!(r.run_id, "pnomyz75");
        assert_eq!(r.project.as_deref(), Some("acme/demo"));
        assert_eq!(r.url, None); // offline: not on the server yet
    }

    #[test]
    fn online_entity_comes_from_the_debug_log() {
        let dir = fixture("wandb_online/wandb/run-20261123_135649-xhjan7zb");
        let got = runs(&[&dir.join("logs/debug.log")]);
        assert_eq!(got[0].project.as_deref(), Some("acme/demo"));
        assert_eq!(
            got[0].url.as_deref(),
            Some("https://wandb.ai/acme/demo/runs/xhjan7zb")
        );
    }

    #[test]
    fn each_touched_run_once_with_its_display_name() {
        let root = fixture("wandb_offline_multi");
        let named = root.join("out/wandb/offline-run-20261123_135321-r078uci4");
        let plain = root.join("wandb/offline-run-20261123_135320-yamrwxuo");
        let got = runs(&[
            &named.join("logs/debug.log"),
            &named.join("files/output.log"),
            &plain.join("logs/debug.log"),
            &root.join("wandb/latest-run"), // not a source
        ]);
        let ids: Vec<&str> = got.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["r078uci4", "yamrwxuo"]);
        assert_eq!(got[0].name.as_deref(), Some("my-named-run"));
        assert_eq!(got[0].project.as_deref(), Some("demo"));
        assert_eq!(got[1].project.as_deref(), Some("uncategorized"));
    }
}
