//! What the assembler learns from the connections ([`crate::intake`] reads
//! them, [`crate::spool`] replays them): decoded messages as inputs.

use std::os::unix::net::UnixStream;

use roar_protocol::{Hello, JobMeta, Message, UntracedReason};

use crate::classify::FileEvent;
use crate::pathnorm::normalize;

pub type ConnId = u64;

/// What the assembler learns from the readers.
#[derive(Debug)]
pub enum Input {
    /// Sent by the acceptor before the reader starts, so the assembler knows
    /// of every connection accepted before a later one's messages.
    Opened(ConnId),
    /// Boxed, like `Finish`: a channel slot is as large as the largest
    /// variant, and the collector allocates thousands of slots at start.
    Hello(ConnId, Box<ProcessHello>),
    /// A successful open: time, path, access bits, fd.
    Open(ConnId, u64, Vec<u8>, u8, i32),
    /// Any other file effect, with its time.
    File(ConnId, u64, FileEvent),
    /// A descriptor opened for writing was closed.
    Close(ConnId, i32),
    Exit(ConnId, i32),
    Untraced(ConnId, Vec<u8>, UntracedReason),
    Finish(ConnId, Box<JobMeta>, UnixStream),
    Warning(String),
    Closed(ConnId),
}

#[derive(Debug, Clone)]
pub struct ProcessHello {
    pub pid: i32,
    pub ppid: i32,
    pub job_token: Vec<u8>,
    pub exe: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub t_ns: u64,
}

impl From<Hello<'_>> for ProcessHello {
    fn from(h: Hello<'_>) -> Self {
        ProcessHello {
            pid: h.pid,
            ppid: h.ppid,
            job_token: h.job_token.0.into_owned(),
            exe: h.exe.0.into_owned(),
            argv: h.argv.into_iter().map(|a| a.0.into_owned()).collect(),
            cwd: h.cwd.0.into_owned(),
            t_ns: h.t_ns,
        }
    }
}

/// The assembler's view of one message; a finish request needs the stream to
/// answer on (`None` when replaying a spool: no one is waiting).
pub fn to_input(id: ConnId, msg: Message<'_>, stream: Option<&UnixStream>) -> Option<Input> {
    let file = |t_ns, ev| Some(Input::File(id, t_ns, ev));
    match msg {
        Message::Hello(h) => Some(Input::Hello(id, Box::new(h.into()))),
        Message::Open {
            path,
            access,
            result,
            t_ns,
        } if result >= 0 => Some(Input::Open(id, t_ns, normalize(&path.0), access, result)),
        Message::Open { .. } => None,
        Message::Rename { from, to, t_ns } => file(
            t_ns,
            FileEvent::Rename {
                from: normalize(&from.0),
                to: normalize(&to.0),
            },
        ),
        Message::Unlink { path, t_ns } => file(
            t_ns,
            FileEvent::Unlink {
                path: normalize(&path.0),
            },
        ),
        Message::Link { to, t_ns, .. } => file(
            t_ns,
            FileEvent::Link {
                to: normalize(&to.0),
            },
        ),
        Message::Exit { status, .. } => Some(Input::Exit(id, status)),
        Message::Close { fd, .. } => Some(Input::Close(id, fd)),
        Message::Untraced { path, reason, .. } => {
            Some(Input::Untraced(id, normalize(&path.0), reason))
        }
        Message::FinishJob(meta) => stream
            .and_then(|s| s.try_clone().ok())
            .map(|reply| Input::Finish(id, Box::new(meta), reply)),
        Message::Chdir { .. } | Message::Exec { .. } => None,
    }
}
