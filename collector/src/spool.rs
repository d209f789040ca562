//! The job's spool: every frame the readers receive is also appended to one
//! file, `.roar/spool/<job>/frames`, as records `conn id (u64 LE), length
//! (u32 LE), payload`, in arrival order. Each reader writes its frames in a
//! batch whenever it has caught up with its socket. If the collector dies
//! mid-job, what it had received can still be turned into an (incomplete)
//! job.
//!
//! One file per job, not per connection: creating a file per traced process
//! cost more kernel time (ext4 inode allocation) than the rest of the
//! collector's work on a job of many short processes.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use roar_protocol::{decode, Message};

use crate::reader::{to_input, ConnId, Input};

const FILE_NAME: &str = "frames";

/// The job's spool file, shared by the readers.
#[derive(Clone)]
pub struct Spool {
    file: Arc<Mutex<File>>,
}

impl Spool {
    pub fn create(dir: &Path) -> io::Result<Spool> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(FILE_NAME))?;
        Ok(Spool {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// A batch of frames of one connection, written by [`Batch::flush`].
    pub fn batch(&self, conn: ConnId) -> Batch {
        Batch {
            spool: self.clone(),
            conn,
            records: Vec::new(),
        }
    }
}

pub struct Batch {
    spool: Spool,
    conn: ConnId,
    records: Vec<u8>,
}

impl Batch {
    pub fn frame(&mut self, payload: &[u8]) {
        self.records.extend_from_slice(&self.conn.to_le_bytes());
        self.records
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.records.extend_from_slice(payload);
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.records.len()
    }

    /// Appends the batch in one write, whole: records of different readers
    /// never interleave.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        let mut file = self.spool.file.lock().unwrap_or_else(|e| e.into_inner());
        let written = file.write_all(&self.records);
        self.records.clear();
        written
    }
}

/// Feeds `apply` the inputs a dead collector had received, in the order it
/// received them: what an assembler needs to rebuild the job.
pub fn replay(dir: &Path, mut apply: impl FnMut(Input)) -> io::Result<()> {
    let mut r = BufReader::new(File::open(dir.join(FILE_NAME))?);
    let mut seen: BTreeSet<ConnId> = BTreeSet::new();
    let mut payload = Vec::new();
    // A record cut short by the crash ends the file: keep what came before.
    while let Some(conn) = read_record(&mut r, &mut payload) {
        if seen.insert(conn) {
            apply(Input::Opened(conn));
        }
        if let Ok(msg) = decode::<Message>(&payload) {
            if let Some(input) = to_input(conn, msg, None) {
                apply(input);
            }
        }
    }
    for conn in seen {
        apply(Input::Closed(conn));
    }
    Ok(())
}

fn read_record(r: &mut impl Read, payload: &mut Vec<u8>) -> Option<ConnId> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head).ok()?;
    let conn = ConnId::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(head[8..].try_into().expect("4 bytes")) as usize;
    if len > roar_protocol::MAX_FRAME_LEN {
        return None;
    }
    payload.resize(len, 0);
    r.read_exact(payload).ok()?;
    Some(conn)
}
