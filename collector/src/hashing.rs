//! The hashing stage: hashes files while the job runs — inputs as they are
//! read, outputs once their writers close them — and, when the job ends,
//! whatever is still missing, turning a [`Draft`] into the [`NewJob`] the
//! writer stores.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::assemble::{Draft, HashHint};
use crate::hash::{hash_all, hash_file, stat_file, HashError, Hashed};
use crate::store::{FileKey, FileRecord, NewJob, Store};

fn as_path(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

/// What was hashed while the job ran.
#[derive(Default)]
pub struct EarlyHashes {
    /// Content as read, by path.
    pub inputs: HashMap<Arc<[u8]>, Hashed>,
    /// Content when its writer closed it, by path; trusted only if the file
    /// is still the same (identity unchanged) at the end.
    pub outputs: HashMap<Arc<[u8]>, Hashed>,
}

/// Worker threads hashing hinted files during the job. The queue is not
/// bounded: it holds at most one entry per path (a path already waiting is
/// not queued twice), and the assembler must never wait on hashing.
pub struct EarlyHasher {
    tx: Option<Sender<HashHint>>,
    waiting: Arc<Mutex<HashSet<HashHint>>>,
    results: Arc<Mutex<EarlyHashes>>,
    /// Bytes and files queued and hashed so far, for progress at the end.
    tally: Arc<Mutex<Progress>>,
    workers: Vec<JoinHandle<()>>,
}

impl EarlyHasher {
    /// Workers look the hash cache up through their own connection to `db`,
    /// opened with the first file: a job that touches nothing pays nothing.
    pub fn start(db: &Path, workers: usize) -> EarlyHasher {
        let (tx, rx) = crossbeam_channel::unbounded::<HashHint>();
        let waiting = Arc::new(Mutex::new(HashSet::new()));
        let results = Arc::new(Mutex::new(EarlyHashes::default()));
        let tally = Arc::new(Mutex::new(Progress::default()));
        let workers = (0..workers)
            .map(|_| {
                let (rx, waiting, results) = (rx.clone(), waiting.clone(), results.clone());
                let tally = tally.clone();
                let db = db.to_path_buf();
                std::thread::spawn(move || {
                    let Ok(first) = rx.recv() else { return };
                    let store = Store::open(&db).ok();
                    let cached =
                        |k: &FileKey| store.as_ref().and_then(|s| s.cached_hash(k).ok().flatten());
                    // Lookups in one read transaction per burst of hints.
                    let mut batch = None;
                    for hint in std::iter::once(first).chain(rx.iter()) {
                        if batch.is_none() {
                            batch = store.as_ref().map(Store::reading);
                        }
                        lock(&waiting).remove(&hint);
                        let (path, role) = match &hint {
                            HashHint::Input(p) => (p, Role::Input),
                            HashHint::Output(p) => (p, Role::Output),
                        };
                        let hashed = hash_file(as_path(path), &cached);
                        {
                            let mut t = lock(&tally);
                            t.hashed_files += 1;
                            t.hashed_bytes += hashed.as_ref().map_or(0, |h| h.size);
                        }
                        if let Ok(h) = hashed {
                            let mut done = lock(&results);
                            let by_path = match role {
                                Role::Input => &mut done.inputs,
                                Role::Output => &mut done.outputs,
                            };
                            by_path.insert(path.clone(), h);
                        }
                        if rx.is_empty() {
                            batch = None;
                        }
                    }
                })
            })
            .collect();
        EarlyHasher {
            tx: Some(tx),
            waiting,
            results,
            tally,
            workers,
        }
    }

    pub fn hint(&self, hint: HashHint) {
        if lock(&self.waiting).insert(hint.clone()) {
            let (HashHint::Input(p) | HashHint::Output(p)) = &hint;
            let size = stat_file(as_path(p)).map_or(0, |k| k.size);
            {
                let mut t = lock(&self.tally);
                t.total_files += 1;
                t.total_bytes += size;
            }
            if let Some(tx) = &self.tx {
                let _ = tx.send(hint);
            }
        }
    }

    /// Waits for the queued files and returns what was hashed.
    pub fn finish(self) -> EarlyHashes {
        self.finish_reporting(&|_| {})
    }

    /// [`finish`](Self::finish), telling `report` how the files still
    /// queued are coming along (what the user waits for when a large
    /// output was closed just before the job ended).
    pub fn finish_reporting(mut self, report: &dyn Fn(Progress)) -> EarlyHashes {
        drop(self.tx.take());
        // Joined on a thread of their own, so the wait ends the moment they
        // do (a job with nothing left pays nothing) and reports meanwhile.
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let workers = std::mem::take(&mut self.workers);
        std::thread::spawn(move || {
            for w in workers {
                let _ = w.join();
            }
            let _ = done_tx.send(());
        });
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
            done_rx.recv_timeout(std::time::Duration::from_millis(100))
        {
            report(*lock(&self.tally));
        }
        std::mem::take(&mut *lock(&self.results))
    }
}

enum Role {
    Input,
    Output,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the hashing left at the job's end stands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub hashed_bytes: u64,
    pub total_bytes: u64,
    pub hashed_files: u64,
    pub total_files: u64,
}

/// Hashes what the draft still needs and assembles the job. `store` is a
/// read connection: the hash cache and the versions of overwritten inputs.
/// `report` is told how the hashing goes, from the hashing threads.
pub fn hash_job(
    draft: Draft,
    early: EarlyHashes,
    store: Store,
    report: &(dyn Fn(Progress) + Sync),
) -> NewJob {
    let store = Mutex::new(store);
    let Draft {
        meta,
        processes,
        inputs,
        outputs,
        overwritten,
        package_reads,
        untraced,
        trackers,
        mut stats,
    } = draft;
    // Inputs hashed during the job are taken as they were read; outputs
    // hashed early only if the file is still what was hashed.
    let early_result = |i: usize, path: &[u8]| -> Option<Hashed> {
        if i < inputs.len() {
            return early.inputs.get(path).cloned();
        }
        let h = early.outputs.get(path)?;
        (stat_file(as_path(path)).ok()? == h.key).then(|| h.clone())
    };
    let early_outputs = |results: &[Option<Result<Hashed, HashError>>]| {
        results[inputs.len()..]
            .iter()
            .filter(|r| matches!(r, Some(Ok(h)) if !h.from_cache))
            .count() as u64
    };
    let all: Vec<&Arc<[u8]>> = inputs.iter().chain(&outputs).collect();
    let mut results: Vec<Option<Result<Hashed, HashError>>> = all
        .iter()
        .enumerate()
        .map(|(i, p)| early_result(i, p).map(Ok))
        .collect();
    stats.hashed_early = early_outputs(&results);
    let late: Vec<&Path> = all
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_none())
        .map(|(p, _)| as_path(p))
        .collect();
    let lookup = |k: &FileKey| lock(&store).cached_hash(k).ok().flatten();
    let so_far = Mutex::new(Progress {
        total_bytes: late
            .iter()
            .filter_map(|p| stat_file(p).ok())
            .map(|k| k.size)
            .sum(),
        total_files: late.len() as u64,
        ..Progress::default()
    });
    report(*lock(&so_far));
    let done = |size: u64| {
        let now = {
            let mut p = lock(&so_far);
            p.hashed_bytes += size;
            p.hashed_files += 1;
            *p
        };
        report(now);
    };
    // All the lookups in one read transaction (see Store::reading).
    let batched = lock(&store).begin_reads();
    let mut late_results = hash_all(&late, &lookup, &done).into_iter();
    if batched {
        lock(&store).end_reads();
    }
    for r in results.iter_mut().filter(|r| r.is_none()) {
        *r = late_results.next();
    }

    let mut hashed = Vec::new();
    let mut records: Vec<Option<FileRecord>> = Vec::with_capacity(all.len());
    for (path, result) in all.iter().zip(results) {
        let shown = || as_path(path).display().to_string();
        match result.expect("every path has a result") {
            Ok(h) => {
                if h.from_cache {
                    stats.cache_hits += 1;
                } else {
                    stats.hashed_files += 1;
                    stats.hashed_bytes += h.size;
                    hashed.push((h.key, h.hash.clone()));
                }
                records.push(Some(FileRecord {
                    path: path.to_vec(),
                    hash: h.hash,
                    size: h.size,
                }));
            }
            Err(HashError::NotAFile) => records.push(None),
            Err(HashError::Unstable) => {
                stats.warnings.push(format!(
                    "{} kept changing while it was hashed; not recorded",
                    shown()
                ));
                records.push(None);
            }
            Err(HashError::Io(e)) => {
                stats.warnings.push(format!("cannot hash {}: {e}", shown()));
                records.push(None);
            }
        }
    }
    let outputs_rec: Vec<FileRecord> = records
        .split_off(inputs.len())
        .into_iter()
        .flatten()
        .collect();
    let mut inputs_rec: Vec<FileRecord> = records.into_iter().flatten().collect();
    for path in overwritten {
        match lock(&store).latest_artifact_at(&path).ok().flatten() {
            Some(a) => inputs_rec.push(FileRecord {
                path: path.to_vec(),
                hash: a.hash,
                size: a.size,
            }),
            None => {
                *stats
                    .filtered
                    .entry("overwritten_unknown_version".into())
                    .or_default() += 1
            }
        }
    }
    let exes: Vec<Vec<u8>> = processes.iter().map(|p| p.exe.clone()).collect();
    let runtime = crate::python::runtime(&package_reads, &exes);
    NewJob {
        meta,
        runtime,
        trackers,
        tracer: "preload".into(),
        untraced,
        processes,
        inputs: inputs_rec,
        outputs: outputs_rec,
        stats,
        hashed,
        datasets: vec![],
    }
}
