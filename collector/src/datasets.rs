//! Dataset-shaped output folders: a job that writes many files of one
//! kind into a folder (`images/0001.png` ...), partitioned files
//! (`part-00000.parquet`, `date=2026-01-01/`), or `train/` `val/` `test/`
//! splits has written a dataset. The folder becomes a composite artifact
//! (its content: the sorted list of member paths and hashes) that roar
//! labels `dataset.id`, `dataset.modality` and `dataset.type`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::store::FileRecord;

/// Files of one extension that make a folder a dataset.
const MIN_SAME_KIND: usize = 8;
/// Partition files (`part-N`) or partition folders (`key=value`) that do.
const MIN_PARTS: usize = 2;
const SPLITS: &[&str] = &[
    "train",
    "training",
    "val",
    "valid",
    "validation",
    "dev",
    "test",
    "eval",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub path: Vec<u8>,
    /// BLAKE3 of the member list (`relative path \0 hash \n`, sorted).
    pub hash: String,
    pub size: u64,
    pub files: usize,
    pub modality: &'static str,
    /// `files`, `partitioned` or `splits`.
    pub layout: &'static str,
}

fn modality(ext: &str) -> &'static str {
    match ext {
        "csv" | "tsv" | "parquet" | "arrow" | "feather" | "orc" | "avro" | "xlsx" => "tabular",
        "png" | "jpg" | "jpeg" | "gif" | "bmp" | "tif" | "tiff" | "webp" => "image",
        "txt" | "md" | "json" | "jsonl" | "xml" | "html" => "text",
        "wav" | "mp3" | "flac" | "ogg" | "m4a" => "audio",
        "mp4" | "avi" | "mov" | "mkv" | "webm" => "video",
        "npy" | "npz" | "h5" | "hdf5" | "pt" | "safetensors" | "tfrecord" | "zarr" => "tensor",
        _ => "other",
    }
}

fn ext(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_part_file(p: &Path) -> bool {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let rest = stem
        .strip_prefix("part-")
        .or_else(|| stem.strip_prefix("part_"));
    rest.is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

fn is_partition_dir(name: &str) -> bool {
    name.split_once('=')
        .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
}

/// The dataset layouts among a job's outputs. A file belongs to at most one
/// dataset: the outermost layout wins (splits, then partition folders).
/// `not_in` (the project root) is never a dataset itself: files written
/// straight into the project are just files.
pub fn detect(outputs: &[FileRecord], not_in: Option<&Path>) -> Vec<Dataset> {
    let files: Vec<(&Path, &FileRecord)> = outputs
        .iter()
        .map(|f| (Path::new(OsStr::from_bytes(&f.path)), f))
        .collect();
    let mut by_dir: BTreeMap<&Path, Vec<(&Path, &FileRecord)>> = BTreeMap::new();
    for (p, f) in &files {
        if let Some(dir) = p.parent() {
            by_dir.entry(dir).or_default().push((p, f));
        }
    }
    let mut found: Vec<(PathBuf, &'static str)> = Vec::new();
    // Folders of folders: splits, or hive-style partitions.
    let mut children: BTreeMap<&Path, BTreeSet<&str>> = BTreeMap::new();
    for dir in by_dir.keys() {
        if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(OsStr::to_str))
        {
            children.entry(parent).or_default().insert(name);
        }
    }
    for (parent, names) in &children {
        let splits = names.iter().filter(|n| SPLITS.contains(n)).count();
        let parts = names.iter().filter(|n| is_partition_dir(n)).count();
        if splits >= 2 {
            found.push((parent.to_path_buf(), "splits"));
        } else if parts >= MIN_PARTS {
            found.push((parent.to_path_buf(), "partitioned"));
        }
    }
    for (dir, members) in &by_dir {
        if found.iter().any(|(d, _)| dir.starts_with(d)) {
            continue;
        }
        let mut by_ext: BTreeMap<String, usize> = BTreeMap::new();
        for (p, _) in members {
            *by_ext.entry(ext(p)).or_default() += 1;
        }
        let parts = members.iter().filter(|(p, _)| is_part_file(p)).count();
        let most = by_ext.values().copied().max().unwrap_or(0);
        if parts >= MIN_PARTS {
            found.push((dir.to_path_buf(), "partitioned"));
        } else if most >= MIN_SAME_KIND && most * 10 >= members.len() * 9 {
            found.push((dir.to_path_buf(), "files"));
        }
    }
    found
        .into_iter()
        .filter(|(dir, _)| Some(dir.as_path()) != not_in)
        .map(|(dir, layout)| composite(&dir, layout, &files))
        .collect()
}

fn composite(dir: &Path, layout: &'static str, files: &[(&Path, &FileRecord)]) -> Dataset {
    let mut members: Vec<(&Path, &FileRecord)> = files
        .iter()
        .filter(|(p, _)| p.starts_with(dir))
        .map(|(p, f)| (p.strip_prefix(dir).unwrap_or(p), *f))
        .collect();
    members.sort_by_key(|(rel, _)| *rel);
    let mut hasher = blake3::Hasher::new();
    let mut by_ext: BTreeMap<String, usize> = BTreeMap::new();
    for (rel, f) in &members {
        hasher.update(rel.as_os_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(f.hash.as_bytes());
        hasher.update(b"\n");
        *by_ext.entry(ext(rel)).or_default() += 1;
    }
    let main_ext = by_ext
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(e, _)| e.as_str())
        .unwrap_or("");
    Dataset {
        path: dir.as_os_str().as_bytes().to_vec(),
        hash: hasher.finalize().to_hex().to_string(),
        size: members.iter().map(|(_, f)| f.size).sum(),
        files: members.len(),
        modality: modality(main_ext),
        layout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str) -> FileRecord {
        FileRecord {
            path: path.as_bytes().to_vec(),
            hash: blake3::hash(path.as_bytes()).to_hex().to_string(),
            size: 10,
        }
    }

    fn layouts(paths: &[String]) -> Vec<(String, &'static str, &'static str, usize)> {
        let recs: Vec<FileRecord> = paths.iter().map(|p| rec(p)).collect();
        detect(&recs, Some(Path::new("/p")))
            .into_iter()
            .map(|d| {
                (
                    String::from_utf8(d.path).unwrap(),
                    d.layout,
                    d.modality,
                    d.files,
                )
            })
            .collect()
    }

    #[test]
    fn dataset_shapes() {
        let imgs: Vec<String> = (0..10).map(|i| format!("/p/imgs/{i:04}.png")).collect();
        assert_eq!(layouts(&imgs), [("/p/imgs".into(), "files", "image", 10)]);
        // Too few, or too mixed: not a dataset.
        assert!(layouts(&imgs[..5]).is_empty());
        let mut mixed = imgs[..8].to_vec();
        mixed.extend((0..4).map(|i| format!("/p/imgs/{i}.txt")));
        assert!(layouts(&mixed).is_empty());

        let parts: Vec<String> = (0..3)
            .map(|i| format!("/p/out/part-{i:05}.parquet"))
            .chain(["/p/out/_SUCCESS".to_string()])
            .collect();
        assert_eq!(
            layouts(&parts),
            [("/p/out".into(), "partitioned", "tabular", 4)]
        );

        let splits: Vec<String> = ["train", "val"]
            .iter()
            .flat_map(|s| (0..2).map(move |i| format!("/p/data/{s}/{i}.csv")))
            .collect();
        assert_eq!(
            layouts(&splits),
            [("/p/data".into(), "splits", "tabular", 4)]
        );

        let hive = ["/p/t/date=1/a.parquet", "/p/t/date=2/a.parquet"].map(String::from);
        assert_eq!(
            layouts(&hive),
            [("/p/t".into(), "partitioned", "tabular", 2)]
        );

        // A few unrelated outputs are not a dataset, nor is the project.
        assert!(layouts(&["/p/model.pkl".into(), "/p/metrics.json".into()]).is_empty());
        let top: Vec<String> = (0..10).map(|i| format!("/p/{i}.csv")).collect();
        assert!(layouts(&top).is_empty());
    }

    #[test]
    fn the_composite_hash_follows_content_not_order() {
        let a: Vec<FileRecord> = (0..9).map(|i| rec(&format!("/p/x/{i}.npy"))).collect();
        let mut b = a.clone();
        b.reverse();
        assert_eq!(detect(&a, None)[0].hash, detect(&b, None)[0].hash);
        b[0].hash = "0".repeat(64);
        assert_ne!(detect(&a, None)[0].hash, detect(&b, None)[0].hash);
    }
}
