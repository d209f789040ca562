//! Turns a job's file events, in time order, into access sets: inputs (read
//! before the job wrote them), outputs (written and still there at the end)
//! and transients (written, then removed).

use std::collections::{BTreeMap, BTreeSet};

use roar_protocol::access;

/// One file-system effect of a traced process. `P` names a path: its
/// absolute bytes, or the assembler's id for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent<P = Vec<u8>> {
    Open { path: P, access: u8 },
    Rename { from: P, to: P },
    Unlink { path: P },
    Link { to: P },
}

#[derive(Debug, Default, Clone, Copy)]
struct PathState {
    /// The job read the version that existed before it.
    read_before_write: bool,
    /// The job's own content is at this path.
    written: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct AccessSets<P> {
    pub inputs: BTreeSet<P>,
    pub outputs: BTreeSet<P>,
    /// Paths written and removed again inside the job.
    pub transient: BTreeSet<P>,
}

pub fn classify<'a, P: Ord + Clone + 'a>(
    events: impl IntoIterator<Item = &'a FileEvent<P>>,
) -> AccessSets<P> {
    let mut state: BTreeMap<&P, PathState> = BTreeMap::new();
    let mut transient: BTreeSet<&P> = BTreeSet::new();
    for ev in events {
        match ev {
            FileEvent::Open { path, access: a } => {
                // Directories, and O_PATH handles that read and write nothing.
                if a & access::DIRECTORY != 0 || a & (access::READ | access::WRITE) == 0 {
                    continue;
                }
                let s = state.entry(path).or_default();
                let writes = a & access::WRITE != 0;
                let keeps_old = a & access::READ != 0 && a & access::TRUNCATE == 0;
                if !s.written && (!writes || keeps_old) {
                    s.read_before_write = true;
                }
                if writes {
                    s.written = true;
                    transient.remove(path);
                }
            }
            FileEvent::Rename { from, to } => {
                let moved = state.entry(from).or_default();
                moved.written = false;
                let dst = state.entry(to).or_default();
                dst.written = true;
                transient.remove(to);
            }
            FileEvent::Unlink { path } => {
                let s = state.entry(path).or_default();
                if s.written {
                    transient.insert(path);
                }
                s.written = false;
            }
            FileEvent::Link { to } => {
                state.entry(to).or_default().written = true;
                transient.remove(to);
            }
        }
    }
    let mut sets = AccessSets {
        inputs: BTreeSet::new(),
        outputs: BTreeSet::new(),
        transient: transient.into_iter().cloned().collect(),
    };
    for (path, s) in state {
        if s.read_before_write {
            sets.inputs.insert(path.clone());
        }
        if s.written {
            sets.outputs.insert(path.clone());
        }
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;
    use access::*;

    fn open(p: &str, a: u8) -> FileEvent {
        FileEvent::Open {
            path: p.into(),
            access: a,
        }
    }

    fn set(paths: &[&str]) -> BTreeSet<Vec<u8>> {
        paths.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn shell_pipeline_with_rename_and_transient() {
        // cat a > b; cp b c; mv c d; rm b
        let events = [
            open("/a", READ),
            open("/b", WRITE | CREATE | TRUNCATE),
            open("/b", READ),
            open("/c", WRITE | CREATE | TRUNCATE),
            FileEvent::Rename {
                from: "/c".into(),
                to: "/d".into(),
            },
            FileEvent::Unlink { path: "/b".into() },
        ];
        let sets = classify(&events);
        assert_eq!(sets.inputs, set(&["/a"]));
        assert_eq!(sets.outputs, set(&["/d"]));
        assert_eq!(sets.transient, set(&["/b"]));
    }

    #[test]
    fn read_then_write_is_both_and_append_is_output_only() {
        let events = [
            open("/cfg", READ),
            open("/cfg", WRITE | TRUNCATE),
            open("/log", WRITE | APPEND | CREATE),
            open("/db", READ | WRITE),
            open("/dir", READ | DIRECTORY),
        ];
        let sets = classify(&events);
        assert_eq!(sets.inputs, set(&["/cfg", "/db"]));
        assert_eq!(sets.outputs, set(&["/cfg", "/db", "/log"]));
    }

    #[test]
    fn recreated_after_removal_is_an_output_again() {
        let events = [
            open("/x", WRITE | CREATE),
            FileEvent::Unlink { path: "/x".into() },
            open("/x", WRITE | CREATE),
        ];
        let sets = classify(&events);
        assert_eq!(sets.outputs, set(&["/x"]));
        assert!(sets.transient.is_empty());
        assert!(sets.inputs.is_empty());
    }
}
