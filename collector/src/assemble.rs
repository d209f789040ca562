//! Gathers what the readers decode into processes and file events, names
//! the files worth hashing early, and at the end classifies and filters the
//! job's accesses into a [`Draft`] (everything but the hashes).
//!
//! Memory stays bounded by what the job touched, not by how often: paths are
//! interned ([`PathTable`]) and a process opening the same path the same way
//! again only moves the time of its latest such open (see [`Assembler::push`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use roar_protocol::{access, JobMeta, UntracedReason};

use crate::classify::{classify, FileEvent};
use crate::filter::Filter;
use crate::intern::{PathId, PathTable};
use crate::reader::{ConnId, Input, ProcessHello};
use crate::store::{JobStats, ProcessRecord, Untraced};
use crate::trackers::{Tracker, TrackerRun};

#[derive(Debug)]
struct Proc {
    hello: ProcessHello,
    exit_status: Option<i32>,
    open_conns: usize,
    /// File events received from it, repeats included.
    events: u64,
    /// Its descriptors open for writing → the file.
    write_fds: HashMap<i32, PathId>,
}

/// Event of one process, ordered by its monotonic time then arrival.
#[derive(Debug)]
struct TimedEvent {
    t_ns: u64,
    arrival: u64,
    pid: i32,
    event: FileEvent<PathId>,
}

/// What the hashing stage should look at while the job runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashHint {
    /// Read, not (yet) written: hash the content as read.
    Input(Arc<[u8]>),
    /// Its writer closed it: likely complete, to be checked again at the end.
    Output(Arc<[u8]>),
}

/// A finished job's accesses, classified and filtered, not yet hashed.
pub struct Draft {
    pub meta: JobMeta,
    pub processes: Vec<ProcessRecord>,
    pub inputs: Vec<Arc<[u8]>>,
    pub outputs: Vec<Arc<[u8]>>,
    /// Inputs the job itself rewrote: the version read is not on disk.
    pub overwritten: Vec<Arc<[u8]>>,
    /// Reads dropped by the package filter (interpreter and distributions).
    pub package_reads: Vec<Vec<u8>>,
    pub untraced: Vec<Untraced>,
    /// Tracker runs the job logged to.
    pub trackers: Vec<TrackerRun>,
    pub stats: JobStats,
}

pub struct Assembler {
    paths: PathTable,
    /// Connection → the pid that said hello on it (None before its hello).
    conns: HashMap<ConnId, Option<i32>>,
    /// Connections of roar itself (finish requests), not of traced processes.
    control: HashSet<ConnId>,
    procs: BTreeMap<i32, Proc>,
    events: Vec<TimedEvent>,
    /// (pid, path, access) of an open already kept → index of the event
    /// standing for its latest repeat, once there is one.
    repeats: HashMap<(i32, PathId, u8), Option<usize>>,
    /// Paths renamed away or removed: their opens are never merged, since
    /// the same open means something else before and after.
    volatile: HashSet<PathId>,
    /// Paths already handed out as [`HashHint::Input`].
    hinted_inputs: HashSet<PathId>,
    hints: Vec<HashHint>,
    /// Executables that escaped tracing, with the pid that ran them.
    untraced: Vec<(i32, Vec<u8>, UntracedReason)>,
    arrivals: u64,
    warnings: Vec<String>,
}

impl Assembler {
    pub fn new(filter: Filter) -> Assembler {
        Assembler {
            paths: PathTable::new(filter),
            conns: HashMap::new(),
            control: HashSet::new(),
            procs: BTreeMap::new(),
            events: Vec::new(),
            repeats: HashMap::new(),
            volatile: HashSet::new(),
            hinted_inputs: HashSet::new(),
            hints: Vec::new(),
            untraced: Vec::new(),
            arrivals: 0,
            warnings: Vec::new(),
        }
    }

    fn pid_of(&self, id: ConnId) -> Option<i32> {
        self.conns.get(&id).copied().flatten()
    }

    /// Applies one input; returns a finish request when roar sent one.
    pub fn apply(&mut self, input: Input) -> Option<(JobMeta, std::os::unix::net::UnixStream)> {
        self.arrivals += 1;
        match input {
            Input::Opened(id) => {
                self.conns.insert(id, None);
            }
            Input::Hello(id, hello) => self.hello(id, *hello),
            Input::Open(id, t_ns, path, a, fd) => {
                let pid = self.pid_of(id)?;
                let path = self.paths.opened(&path);
                self.push(pid, t_ns, FileEvent::Open { path, access: a });
                if a & access::DIRECTORY != 0 || !self.paths.kept(path) {
                    return None;
                }
                if a & access::WRITE != 0 {
                    if let Some(p) = self.procs.get_mut(&pid) {
                        p.write_fds.insert(fd, path);
                    }
                } else if a & access::READ != 0 && self.hinted_inputs.insert(path) {
                    self.hints
                        .push(HashHint::Input(self.paths.name(path).clone()));
                }
            }
            Input::File(id, t_ns, event) => {
                let pid = self.pid_of(id)?;
                let event = match event {
                    FileEvent::Open { path, access } => FileEvent::Open {
                        path: self.paths.opened(&path),
                        access,
                    },
                    FileEvent::Rename { from, to } => {
                        let from = self.paths.id(&from);
                        self.volatile.insert(from);
                        FileEvent::Rename {
                            from,
                            to: self.paths.id(&to),
                        }
                    }
                    FileEvent::Unlink { path } => {
                        let path = self.paths.id(&path);
                        self.volatile.insert(path);
                        FileEvent::Unlink { path }
                    }
                    FileEvent::Link { to } => FileEvent::Link {
                        to: self.paths.id(&to),
                    },
                };
                self.push(pid, t_ns, event);
            }
            Input::Close(id, fd) => {
                let pid = self.pid_of(id)?;
                let path = self.procs.get_mut(&pid)?.write_fds.remove(&fd)?;
                self.hints
                    .push(HashHint::Output(self.paths.name(path).clone()));
            }
            Input::Exit(id, status) => {
                let pid = self.pid_of(id)?;
                self.procs.get_mut(&pid)?.exit_status = Some(status);
            }
            Input::Untraced(id, path, reason) => {
                let pid = self.pid_of(id)?;
                self.untraced.push((pid, path, reason));
            }
            Input::Finish(id, meta, stream) => {
                self.control.insert(id);
                return Some((*meta, stream));
            }
            Input::Warning(w) => {
                if !self.warnings.contains(&w) {
                    self.warnings.push(w);
                }
            }
            Input::Closed(id) => self.closed(id),
        }
        None
    }

    fn hello(&mut self, id: ConnId, mut hello: ProcessHello) {
        hello.exe = resolve_exe(hello.exe);
        crate::python::prefetch(&hello.exe);
        let pid = hello.pid;
        self.conns.insert(id, Some(pid));
        let proc = self.procs.entry(pid).or_insert_with(|| Proc {
            hello: hello.clone(),
            exit_status: None,
            open_conns: 0,
            events: 0,
            write_fds: HashMap::new(),
        });
        // Images of one pid (exec) come on separate connections, in any
        // order: the latest names the process, the earliest knows its
        // parent and start.
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

    /// A connection ended. When it was a process's last, the process is gone
    /// and the kernel closed its files: what it wrote can be hashed.
    fn closed(&mut self, id: ConnId) {
        let Some(Some(pid)) = self.conns.remove(&id) else {
            return;
        };
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        p.open_conns = p.open_conns.saturating_sub(1);
        if p.open_conns == 0 {
            let written: BTreeSet<PathId> = p.write_fds.drain().map(|(_, path)| path).collect();
            for path in written {
                self.hints
                    .push(HashHint::Output(self.paths.name(path).clone()));
            }
        }
    }

    /// Records an event. A process repeating an open it already made (same
    /// path, same access) changes nothing about what the job read or wrote,
    /// as long as nobody renamed or removed that path: only its first and
    /// latest occurrences are kept.
    fn push(&mut self, pid: i32, t_ns: u64, event: FileEvent<PathId>) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.events += 1;
        }
        if let FileEvent::Open { path, access } = event {
            if !self.volatile.contains(&path) {
                let index = self.events.len();
                match self.repeats.get_mut(&(pid, path, access)) {
                    None => {
                        self.repeats.insert((pid, path, access), None);
                    }
                    Some(latest @ None) => *latest = Some(index),
                    Some(Some(latest)) => {
                        let e = &mut self.events[*latest];
                        if t_ns >= e.t_ns {
                            e.t_ns = t_ns;
                            e.arrival = self.arrivals;
                        }
                        return;
                    }
                }
            }
        }
        self.events.push(TimedEvent {
            t_ns,
            arrival: self.arrivals,
            pid,
            event,
        });
    }

    /// Files worth hashing now, since the last call.
    pub fn take_hints(&mut self) -> Vec<HashHint> {
        std::mem::take(&mut self.hints)
    }

    /// The process that started the job (its parent is not one of the
    /// job's processes), for jobs nobody announced (launcher mode):
    /// (pid, argv, cwd, exit status when it said).
    pub fn root(&self) -> Option<(i32, &ProcessHello, Option<i32>)> {
        self.procs
            .iter()
            .filter(|(_, p)| !self.procs.contains_key(&p.hello.ppid))
            .min_by_key(|(_, p)| p.hello.t_ns)
            .map(|(pid, p)| (*pid, &p.hello, p.exit_status))
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
    fn per_process_sets(&self) -> HashMap<i32, (BTreeSet<PathId>, BTreeSet<PathId>)> {
        let mut sets: HashMap<i32, (BTreeSet<PathId>, BTreeSet<PathId>)> = HashMap::new();
        for e in &self.events {
            let (read, written) = match e.event {
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
            entry.0.extend(read.filter(|&p| self.paths.kept(p)));
            entry.1.extend(written.filter(|&p| self.paths.kept(p)));
        }
        sets
    }

    /// The job for `meta` from what was received. Processes of other jobs
    /// (another token) are left out; processes still running are detached.
    pub fn draft(&self, meta: JobMeta) -> Draft {
        let token = meta.job_token.as_bytes();
        let members: HashSet<i32> = self
            .procs
            .iter()
            .filter(|(_, p)| token.is_empty() || p.hello.job_token == token)
            .map(|(pid, _)| *pid)
            .collect();

        let owned = |ids: BTreeSet<PathId>| -> Vec<Vec<u8>> {
            ids.into_iter()
                .map(|id| self.paths.name(id).to_vec())
                .collect()
        };
        let mut per_process = self.per_process_sets();
        let mut processes: Vec<ProcessRecord> = self
            .procs
            .iter()
            .filter(|(pid, _)| members.contains(pid))
            .map(|(pid, p)| {
                let (reads, writes) = per_process.remove(pid).unwrap_or_default();
                ProcessRecord {
                    reads: owned(reads),
                    writes: owned(writes),
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
                }
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
            events: members.iter().map(|pid| self.procs[pid].events).sum(),
            processes: processes.len() as u64,
            transient: sets.transient.len() as u64,
            warnings: self.warnings.clone(),
            ..JobStats::default()
        };
        let mut package_reads = Vec::new();
        let mut keep = |ids: &BTreeSet<PathId>| -> Vec<PathId> {
            ids.iter()
                .copied()
                .filter(|&id| match self.paths.drop_reason(id) {
                    Some(reason) => {
                        *stats.filtered.entry(reason.to_string()).or_default() += 1;
                        if reason == "package" {
                            package_reads.push(self.paths.name(id).to_vec());
                        }
                        false
                    }
                    None => true,
                })
                .collect()
        };
        let outputs = keep(&sets.outputs);
        // A path the job both read and rewrote: the version read is the one
        // recorded before this job; the file on disk is already the new one.
        let (overwritten, inputs): (Vec<PathId>, Vec<PathId>) = keep(&sets.inputs)
            .into_iter()
            .partition(|p| sets.outputs.contains(p));
        // Sorted by path: stored in that order, each index of the store
        // grows at a few places instead of all over.
        let names = |ids: Vec<PathId>| -> Vec<Arc<[u8]>> {
            let mut names: Vec<Arc<[u8]>> = ids
                .into_iter()
                .map(|id| self.paths.name(id).clone())
                .collect();
            names.sort();
            names
        };

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
        let trackers = self.tracker_runs(&events, &meta);
        Draft {
            meta,
            processes,
            inputs: names(inputs),
            outputs: names(outputs),
            overwritten: names(overwritten),
            package_reads,
            untraced,
            trackers,
            stats,
        }
    }

    /// The tracker runs behind the tracker paths the job touched.
    fn tracker_runs(&self, events: &[&TimedEvent], meta: &JobMeta) -> Vec<TrackerRun> {
        let mut touched: BTreeMap<Tracker, BTreeSet<PathId>> = BTreeMap::new();
        for e in events {
            let ids = match e.event {
                FileEvent::Open { path, .. } | FileEvent::Unlink { path } => [Some(path), None],
                FileEvent::Rename { from, to } => [Some(from), Some(to)],
                FileEvent::Link { to } => [Some(to), None],
            };
            for id in ids.into_iter().flatten() {
                if let Some(t) = self.paths.drop_reason(id).and_then(Tracker::named) {
                    touched.entry(t).or_default().insert(id);
                }
            }
        }
        let paths: BTreeMap<Tracker, Vec<&Path>> = touched
            .into_iter()
            .map(|(t, ids)| {
                let paths = ids
                    .into_iter()
                    .map(|id| as_path(self.paths.name(id)))
                    .collect();
                (t, paths)
            })
            .collect();
        crate::trackers::runs(&paths, meta.started_at, meta.ended_at)
    }
}

fn as_path(p: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(p))
}

/// The shim sends the path exec was given when that is the image itself,
/// symlinks and all (reading /proc/self/exe cost each process ~25 µs): the
/// recorded exe is the file it names. Kept as sent when it cannot be
/// resolved (deleted since, or not a path).
fn resolve_exe(exe: Vec<u8>) -> Vec<u8> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    if exe.first() != Some(&b'/') {
        return exe;
    }
    match std::fs::canonicalize(std::ffi::OsStr::from_bytes(&exe)) {
        Ok(real) => real.into_os_string().into_vec(),
        Err(_) => exe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn hello(argv: &str, ppid: i32, t_ns: u64) -> ProcessHello {
        ProcessHello {
            pid: 7,
            ppid,
            job_token: vec![],
            exe: argv.as_bytes().to_vec(),
            argv: vec![argv.as_bytes().to_vec()],
            cwd: b"/project".to_vec(),
            t_ns,
        }
    }

    fn assembler() -> Assembler {
        Assembler::new(Filter::new(
            Some("/project".into()),
            vec![],
            &Config::default(),
        ))
    }

    fn meta() -> JobMeta {
        JobMeta {
            root_pid: 7,
            ..JobMeta::default()
        }
    }

    #[test]
    fn the_latest_image_names_a_process_whatever_the_arrival_order() {
        let mut asm = assembler();
        for id in [1, 2] {
            asm.apply(Input::Opened(id));
        }
        // The exec'd image's hello arrives before its pre-exec image's.
        asm.apply(Input::Hello(2, Box::new(hello("cat", 1, 20))));
        asm.apply(Input::Hello(1, Box::new(hello("sh", 5, 10))));
        let p = &asm.procs[&7].hello;
        assert_eq!((p.argv[0].as_slice(), p.ppid, p.t_ns), (&b"cat"[..], 5, 10));
    }

    #[test]
    fn repeated_opens_are_merged_but_keep_their_meaning() {
        let mut asm = assembler();
        asm.apply(Input::Opened(1));
        asm.apply(Input::Hello(1, Box::new(hello("python", 1, 1))));
        let open = |path: &str, a: u8, t: u64| Input::Open(1, t, path.into(), a, 3);
        for t in 0..1000 {
            asm.apply(open("/project/data.csv", access::READ, 10 + t));
        }
        // Written then rewritten many times, removed in between: not merged.
        let w = access::WRITE | access::CREATE | access::TRUNCATE;
        asm.apply(open("/project/tmp.bin", w, 2000));
        asm.apply(Input::File(
            1,
            2001,
            FileEvent::Unlink {
                path: "/project/tmp.bin".into(),
            },
        ));
        asm.apply(open("/project/tmp.bin", w, 2002));
        asm.apply(open("/project/tmp.bin", w, 2003));
        assert!(asm.events.len() <= 6, "{} events kept", asm.events.len());
        let d = asm.draft(meta());
        assert_eq!(d.stats.events, 1004);
        assert_eq!(d.inputs, vec![Arc::from(&b"/project/data.csv"[..])]);
        assert_eq!(d.outputs, vec![Arc::from(&b"/project/tmp.bin"[..])]);
        assert_eq!(
            asm.take_hints(),
            vec![HashHint::Input(Arc::from(&b"/project/data.csv"[..]))]
        );
    }

    #[test]
    fn closing_or_ending_a_writer_hints_its_outputs() {
        let mut asm = assembler();
        asm.apply(Input::Opened(1));
        asm.apply(Input::Hello(1, Box::new(hello("python", 1, 1))));
        let w = access::WRITE | access::CREATE | access::TRUNCATE;
        asm.apply(Input::Open(1, 2, "/project/a".into(), w, 3));
        asm.apply(Input::Open(1, 3, "/project/b".into(), w, 4));
        asm.apply(Input::Open(1, 4, "/proc/self/x".into(), w, 5));
        asm.apply(Input::Close(1, 3));
        asm.apply(Input::Close(1, 3)); // already closed: nothing more
        let out = |p: &str| HashHint::Output(Arc::from(p.as_bytes()));
        assert_eq!(asm.take_hints(), vec![out("/project/a")]);
        asm.apply(Input::Closed(1));
        assert_eq!(asm.take_hints(), vec![out("/project/b")]);
    }
}
