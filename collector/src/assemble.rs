//! Gathers what the readers decode into processes and file events, and turns
//! them into a finished job: classified, filtered and hashed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::Mutex;

use roar_protocol::{access, JobMeta, UntracedReason};

use crate::classify::{classify, FileEvent};
use crate::filter::Filter;
use crate::hash::{hash_all, HashError, Hashed};
use crate::reader::{ConnId, Input, ProcessHello};
use crate::store::{FileKey, FileRecord, JobStats, NewJob, ProcessRecord, Store, Untraced};

#[derive(Debug)]
struct Proc {
    hello: ProcessHello,
    exit_status: Option<i32>,
    open_conns: usize,
}

/// A file opened through a symlink is the file it points to (as the
/// kernel's view, /proc/PID/fd, names it). Checked when the event arrives,
/// while the link most likely still exists; a dangling one stays as named.
fn follow_symlink(path: &mut Vec<u8>) {
    let p = Path::new(OsStr::from_bytes(path));
    if p.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        if let Ok(target) = p.canonicalize() {
            *path = target.into_os_string().into_vec();
        }
    }
}

/// What one process read and what it wrote.
type ReadsWrites<P> = (Vec<P>, Vec<P>);
type PathSets<'a> = (BTreeSet<&'a [u8]>, BTreeSet<&'a [u8]>);

/// Event of one process, ordered by its monotonic time then arrival.
#[derive(Debug)]
struct TimedEvent {
    t_ns: u64,
    arrival: u64,
    pid: i32,
    event: FileEvent,
}

#[derive(Default)]
pub struct Assembler {
    /// Connection → the pid that said hello on it (None before its hello).
    conns: HashMap<ConnId, Option<i32>>,
    /// Connections of roar itself (finish requests), not of traced processes.
    control: HashSet<ConnId>,
    procs: BTreeMap<i32, Proc>,
    events: Vec<TimedEvent>,
    /// Executables that escaped tracing, with the pid that ran them.
    untraced: Vec<(i32, Vec<u8>, UntracedReason)>,
    n_events: u64,
    warnings: Vec<String>,
}

impl Assembler {
    /// Applies one input; returns a finish request when roar sent one.
    pub fn apply(&mut self, input: Input) -> Option<(JobMeta, std::os::unix::net::UnixStream)> {
        self.n_events += 1;
        match input {
            Input::Opened(id) => {
                self.conns.insert(id, None);
            }
            Input::Hello(id, hello) => {
                let pid = hello.pid;
                self.conns.insert(id, Some(pid));
                let proc = self.procs.entry(pid).or_insert_with(|| Proc {
                    hello: hello.clone(),
                    exit_status: None,
                    open_conns: 0,
                });
                // Images of one pid (exec) come on separate connections, in
                // any order: the latest names the process, the earliest
                // knows its parent and start.
                let (older, newer) = if hello.t_ns < proc.hello.t_ns {
                    (hello, proc.hello.clone())
                } else {
                    (proc.hello.clone(), hello)
                };
                proc.hello = ProcessHello {
                    ppid: older.ppid,
                    t_ns: older.t_ns,
                    ..newer
                };
                proc.open_conns += 1;
            }
            Input::File(id, t_ns, mut event) => {
                if let FileEvent::Open { path, .. } = &mut event {
                    follow_symlink(path);
                }
                if let Some(Some(pid)) = self.conns.get(&id) {
                    self.events.push(TimedEvent {
                        t_ns,
                        arrival: self.n_events,
                        pid: *pid,
                        event,
                    });
                }
            }
            Input::Exit(id, status) => {
                if let Some(Some(pid)) = self.conns.get(&id) {
                    if let Some(p) = self.procs.get_mut(pid) {
                        p.exit_status = Some(status);
                    }
                }
            }
            Input::Untraced(id, path, reason) => {
                if let Some(Some(pid)) = self.conns.get(&id) {
                    self.untraced.push((*pid, path, reason));
                }
            }
            Input::Finish(id, meta, stream) => {
                self.control.insert(id);
                return Some((meta, stream));
            }
            Input::Warning(w) => {
                if !self.warnings.contains(&w) {
                    self.warnings.push(w);
                }
            }
            Input::Closed(id) => {
                if let Some(Some(pid)) = self.conns.remove(&id) {
                    if let Some(p) = self.procs.get_mut(&pid) {
                        p.open_conns = p.open_conns.saturating_sub(1);
                    }
                }
            }
        }
        None
    }

    /// Traced-process connections still open (control connections excluded).
    pub fn open_process_conns(&self) -> usize {
        self.conns
            .keys()
            .filter(|id| !self.control.contains(id))
            .count()
    }

    /// What each process read and wrote, before any job-level logic (renames
    /// followed, transients removed): lineage paths only.
    fn per_process_sets(&self, filter: &Filter) -> HashMap<i32, ReadsWrites<Vec<u8>>> {
        let mut sets: HashMap<i32, PathSets> = HashMap::new();
        for e in &self.events {
            let (read, written): (Option<&[u8]>, Option<&[u8]>) = match &e.event {
                FileEvent::Open { path, access: a } => {
                    if a & access::DIRECTORY != 0 {
                        continue;
                    }
                    (
                        (a & access::READ != 0).then_some(path),
                        (a & access::WRITE != 0).then_some(path),
                    )
                }
                FileEvent::Rename { to, .. } | FileEvent::Link { to } => (None, Some(to)),
                FileEvent::Unlink { .. } => (None, None),
            };
            let entry = sets.entry(e.pid).or_default();
            entry
                .0
                .extend(read.filter(|p| filter.drop_reason(p).is_none()));
            entry
                .1
                .extend(written.filter(|p| filter.drop_reason(p).is_none()));
        }
        sets.into_iter()
            .map(|(pid, (r, w))| {
                let own = |s: BTreeSet<&[u8]>| s.into_iter().map(<[u8]>::to_vec).collect();
                (pid, (own(r), own(w)))
            })
            .collect()
    }

    /// Builds the job for `meta` from what was received. Processes of other
    /// jobs (another token) are left out; processes still running are detached.
    /// `prehashed`: inputs hashed while the job ran (see [`Prehasher`]).
    pub fn build_job(
        &self,
        meta: JobMeta,
        filter: &Filter,
        store: &Mutex<Store>,
        prehashed: &HashMap<Vec<u8>, Hashed>,
    ) -> NewJob {
        let token = meta.job_token.as_bytes();
        let members: HashSet<i32> = self
            .procs
            .iter()
            .filter(|(_, p)| token.is_empty() || p.hello.job_token == token)
            .map(|(pid, _)| *pid)
            .collect();

        let mut per_process = self.per_process_sets(filter);
        let mut processes: Vec<ProcessRecord> = self
            .procs
            .iter()
            .filter(|(pid, _)| members.contains(pid))
            .map(|(pid, p)| {
                let (reads, writes) = per_process.remove(pid).unwrap_or_default();
                (pid, p, reads, writes)
            })
            .map(|(pid, p, reads, writes)| ProcessRecord {
                reads,
                writes,
                pid: *pid,
                ppid: p.hello.ppid,
                exe: p.hello.exe.clone(),
                argv: p.hello.argv.clone(),
                exit_status: if *pid == meta.root_pid {
                    Some(meta.exit_status)
                } else {
                    p.exit_status
                },
                detached: p.open_conns > 0 && *pid != meta.root_pid,
            })
            .collect();
        processes.sort_by_key(|p| self.procs[&p.pid].hello.t_ns);

        let mut events: Vec<&TimedEvent> = self
            .events
            .iter()
            .filter(|e| members.contains(&e.pid))
            .collect();
        events.sort_by_key(|e| (e.t_ns, e.arrival));
        let sets = classify(events.iter().map(|e| &e.event));

        let mut stats = JobStats {
            events: events.len() as u64,
            processes: processes.len() as u64,
            transient: sets.transient.len() as u64,
            warnings: self.warnings.clone(),
            ..JobStats::default()
        };
        let mut package_reads: Vec<Vec<u8>> = Vec::new();
        let mut keep = |paths: &std::collections::BTreeSet<Vec<u8>>| -> Vec<Vec<u8>> {
            paths
                .iter()
                .filter(|p| match filter.drop_reason(p) {
                    Some(reason) => {
                        *stats.filtered.entry(reason.to_string()).or_default() += 1;
                        if reason == "package" {
                            package_reads.push(p.to_vec());
                        }
                        false
                    }
                    None => true,
                })
                .cloned()
                .collect()
        };
        let outputs = keep(&sets.outputs);
        // A path the job both read and rewrote: the version read is the one
        // recorded before this job; the file on disk is already the new one.
        let (overwritten, inputs): (Vec<Vec<u8>>, Vec<Vec<u8>>) = keep(&sets.inputs)
            .into_iter()
            .partition(|p| sets.outputs.contains(p));

        let lookup = |k: &FileKey| -> Option<String> {
            let s = store.lock().unwrap_or_else(|e| e.into_inner());
            s.cached_hash(k).ok().flatten()
        };
        let to_hash: Vec<&Path> = inputs
            .iter()
            .chain(&outputs)
            .map(|p| Path::new(OsStr::from_bytes(p)))
            .collect();
        // Inputs hashed while the job ran are taken as they were read;
        // outputs are hashed now, in their final state.
        let early = |i: usize, p: &Path| -> Option<&Hashed> {
            (i < inputs.len()).then(|| prehashed.get(p.as_os_str().as_bytes()))?
        };
        let late: Vec<&Path> = to_hash
            .iter()
            .enumerate()
            .filter(|(i, p)| early(*i, p).is_none())
            .map(|(_, p)| *p)
            .collect();
        let mut late_results = hash_all(&late, &lookup).into_iter();
        let results: Vec<Result<Hashed, HashError>> = to_hash
            .iter()
            .enumerate()
            .map(|(i, p)| match early(i, p) {
                Some(h) => Ok(h.clone()),
                None => late_results.next().expect("one result per late path"),
            })
            .collect();
        let mut hashed_keys: Vec<(FileKey, String)> = Vec::new();
        let mut records = Vec::with_capacity(to_hash.len());
        for (path, result) in to_hash.iter().zip(results) {
            match result {
                Ok(h) => {
                    if h.from_cache {
                        stats.cache_hits += 1;
                    } else {
                        stats.hashed_files += 1;
                        stats.hashed_bytes += h.size;
                    }
                    if !h.from_cache {
                        hashed_keys.push((h.key, h.hash.clone()));
                    }
                    records.push(Some(FileRecord {
                        path: path.as_os_str().as_bytes().to_vec(),
                        hash: h.hash,
                        size: h.size,
                    }));
                }
                Err(HashError::NotAFile) => records.push(None),
                Err(HashError::Unstable) => {
                    stats.warnings.push(format!(
                        "{} kept changing while it was hashed; not recorded",
                        path.display()
                    ));
                    records.push(None);
                }
                Err(HashError::Io(e)) => {
                    stats
                        .warnings
                        .push(format!("cannot hash {}: {e}", path.display()));
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
            let prior = store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .latest_artifact_at(&path)
                .ok()
                .flatten();
            match prior {
                Some(a) => inputs_rec.push(FileRecord {
                    path,
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
        let mut untraced: Vec<Untraced> = self
            .untraced
            .iter()
            .filter(|(pid, ..)| members.contains(pid))
            .map(|(_, path, reason)| Untraced {
                exe: String::from_utf8_lossy(path).into_owned(),
                reason: *reason,
            })
            .collect();
        if let Some((exe, reason)) = &meta.root_untraced {
            untraced.push(Untraced {
                exe: exe.clone(),
                reason: *reason,
            });
        }
        untraced.sort();
        untraced.dedup();
        let exes: Vec<Vec<u8>> = processes.iter().map(|p| p.exe.clone()).collect();
        let runtime = crate::python::runtime(&package_reads, &exes);
        NewJob {
            meta,
            runtime,
            tracer: "preload".into(),
            untraced,
            processes,
            inputs: inputs_rec,
            outputs: outputs_rec,
            stats,
            hashed: hashed_keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(argv: &str, ppid: i32, t_ns: u64) -> ProcessHello {
        ProcessHello {
            pid: 7,
            ppid,
            job_token: vec![],
            exe: argv.as_bytes().to_vec(),
            argv: vec![argv.as_bytes().to_vec()],
            t_ns,
        }
    }

    #[test]
    fn the_latest_image_names_a_process_whatever_the_arrival_order() {
        let mut asm = Assembler::default();
        for id in [1, 2] {
            asm.apply(Input::Opened(id));
        }
        // The exec'd image's hello arrives before its pre-exec image's.
        asm.apply(Input::Hello(2, hello("cat", 1, 20)));
        asm.apply(Input::Hello(1, hello("sh", 5, 10)));
        let p = &asm.procs[&7].hello;
        assert_eq!((p.argv[0].as_slice(), p.ppid, p.t_ns), (&b"cat"[..], 5, 10));
    }
}
