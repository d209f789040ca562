//! The job's spool: every frame a reader receives is also appended to a file
//! per connection under `.roar/spool/<job>/`, flushed whenever the reader has
//! caught up with its socket. If the collector dies mid-job, what it had
//! received can still be turned into an (incomplete) job.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use roar_protocol::{decode, read_frame, Message};

use crate::reader::{to_input, ConnId, Input};

pub struct SpoolWriter {
    out: BufWriter<File>,
}

fn conn_file(dir: &Path, id: ConnId) -> PathBuf {
    dir.join(format!("{id}.frames"))
}

impl SpoolWriter {
    pub fn create(dir: &Path, id: ConnId) -> io::Result<SpoolWriter> {
        Ok(SpoolWriter {
            out: BufWriter::with_capacity(64 * 1024, File::create(conn_file(dir, id))?),
        })
    }

    /// Appends one frame payload, length-prefixed as on the wire.
    pub fn frame(&mut self, payload: &[u8]) -> io::Result<()> {
        self.out.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.out.write_all(payload)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Feeds `apply` the inputs a dead collector had received, connection by
/// connection in the order they were accepted: what an assembler needs to
/// rebuild the job.
pub fn replay(dir: &Path, mut apply: impl FnMut(Input)) -> io::Result<()> {
    let mut conns: Vec<(ConnId, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".frames")?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect();
    conns.sort();
    for (id, path) in conns {
        apply(Input::Opened(id));
        let mut r = BufReader::new(File::open(path)?);
        let mut buf = Vec::new();
        // A frame cut short by the crash ends the file: keep what came before.
        while let Ok(true) = read_frame(&mut r, &mut buf) {
            if let Ok(msg) = decode::<Message>(&buf) {
                if let Some(input) = to_input(id, msg, None) {
                    apply(input);
                }
            }
        }
        apply(Input::Closed(id));
    }
    Ok(())
}
