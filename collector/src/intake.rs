//! One thread takes in every connection: it accepts them, reads whatever
//! is ready, cuts it into frames, spools and decodes those, and hands the
//! inputs to the assembler in arrival order. A thread per connection cost a
//! thread start and exit (stack mapping, guard page, signal stack) for
//! every traced process, on the same two cores as the traced program.
//!
//! While traffic flows the thread naps and polls instead of sleeping in
//! `epoll_wait`: a shim's connect or send then finds nobody to wake, which
//! spares every traced process a cross-CPU wakeup (300 × `cat` under `sh`:
//! ~0.1 ms per process on a 2-core VM). It blocks again after [`BUSY_FOR`]
//! without traffic, so an idle collector costs nothing, and as soon as no
//! connection is open, so `roar run`'s request for the job, which follows
//! its last process's exit, is answered without waiting out a nap.
//!
//! Connections are read in turns of at most [`TURN_BYTES`], so one process
//! streaming a million events cannot starve the others (whose sends would
//! time out in the shim). A full input channel blocks this thread: the
//! shims then wait on their socket buffers, and nothing is dropped.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use roar_protocol::{
    check_preamble, cut_frame, decode, Cut, FrameError, Message, FRAME_PREFIX, PREAMBLE_LEN,
};

use crate::reader::{to_input, ConnId, Input};
use crate::spool::{Batch, Spool};

const LISTENER: Token = Token(usize::MAX);
/// Bytes read from one connection before the others get their turn.
const TURN_BYTES: usize = 256 * 1024;
/// How often accepting is retried while the fd limit refuses it: the
/// listener is edge-triggered, so no new event would say to try again.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);
/// The pauses between polls while busy: the first is short, so a message
/// that follows traffic closely (a process's exit, then `roar run` asking
/// for the job) waits little; each quiet poll doubles it up to the last,
/// which is short beside a process's life and keeps a streaming shim's
/// socket buffer (~200 KiB) from filling between two reads.
const FIRST_NAP: Duration = Duration::from_micros(50);
const LAST_NAP: Duration = Duration::from_millis(1);
/// How long after the last traffic the thread keeps polling.
const BUSY_FOR: Duration = Duration::from_millis(100);
/// A connection's buffer is given back when it is emptied above this size.
const KEEP_BUFFER: usize = 64 * 1024;

struct Conn {
    stream: UnixStream,
    /// Received bytes not yet cut into frames.
    pending: Vec<u8>,
    /// The preamble was read and accepted.
    greeted: bool,
    /// Payload bytes still to skip of a frame too long to accept.
    skip: usize,
    /// In the queue of connections to read.
    queued: bool,
    spool: Option<Batch>,
}

enum Turn {
    /// Read until the socket had nothing more.
    Drained,
    /// Stopped at [`TURN_BYTES`]; more may be waiting.
    More,
    /// End of stream (or a read error, which ends it too).
    Ended,
}

/// What the bytes of one connection said.
enum Cutting {
    Open,
    /// The peer is not a roar shim; close it.
    Refused,
    /// `roar run` asked for the job: the stream answers it, off this thread.
    Finished(Input),
}

pub struct Intake {
    poll: Poll,
    listener: UnixListener,
    conns: HashMap<ConnId, Conn>,
    ready: VecDeque<ConnId>,
    next_id: ConnId,
    /// The last accept failed for want of fds; connections wait in the
    /// backlog until one is freed.
    accept_blocked: bool,
    tx: Sender<Input>,
    spool: Option<Spool>,
    scratch: Vec<u8>,
}

impl Intake {
    /// Takes over `listener`; `spool` keeps a copy of every frame.
    pub fn new(
        listener: UnixListener,
        tx: Sender<Input>,
        spool: Option<Spool>,
    ) -> std::io::Result<Intake> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        Ok(Intake {
            poll,
            listener,
            conns: HashMap::new(),
            ready: VecDeque::new(),
            next_id: 0,
            accept_blocked: false,
            tx,
            spool,
            scratch: vec![0; 64 * 1024],
        })
    }

    /// Serves until the assembler goes away. `admit` vets each new peer.
    pub fn run(mut self, admit: impl Fn(&UnixStream) -> bool) {
        let mut events = Events::with_capacity(256);
        let mut last_traffic: Option<Instant> = None;
        let mut nap = FIRST_NAP;
        loop {
            let busy =
                !self.conns.is_empty() && last_traffic.is_some_and(|at| at.elapsed() < BUSY_FOR);
            let wait = if !self.ready.is_empty() || busy {
                Some(Duration::ZERO)
            } else if self.accept_blocked {
                Some(ACCEPT_RETRY)
            } else {
                None
            };
            if let Err(e) = self.poll.poll(&mut events, wait) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("roar-collector: cannot wait for connections: {e}");
                return;
            }
            if !events.is_empty() {
                last_traffic = Some(Instant::now());
                nap = FIRST_NAP;
            } else if busy && self.ready.is_empty() {
                std::thread::sleep(nap);
                nap = (nap * 2).min(LAST_NAP);
            }
            for event in events.iter() {
                if event.token() == LISTENER {
                    if !self.accept(&admit) {
                        return;
                    }
                } else {
                    self.enqueue(event.token().0 as ConnId);
                }
            }
            for _ in 0..self.ready.len() {
                let Some(id) = self.ready.pop_front() else {
                    break;
                };
                if !self.serve(id) {
                    return;
                }
            }
            if self.accept_blocked && !self.accept(&admit) {
                return;
            }
        }
    }

    fn enqueue(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.queued {
                conn.queued = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Accepts every waiting connection; false once the assembler is gone.
    fn accept(&mut self, admit: &impl Fn(&UnixStream) -> bool) -> bool {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.accept_blocked = false;
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of fds, most likely: those waiting stay queued
                    // and are tried again as connections end.
                    if !self.accept_blocked {
                        eprintln!("roar-collector: cannot accept a connection yet: {e}");
                    }
                    self.accept_blocked = true;
                    return true;
                }
            };
            if !admit(&stream) || stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let token = Token(id as usize);
            if let Err(e) = self.poll.registry().register(
                &mut SourceFd(&stream.as_raw_fd()),
                token,
                Interest::READABLE,
            ) {
                eprintln!("roar-collector: cannot watch a connection: {e}");
                continue;
            }
            // Before any of its frames, so the assembler knows of every
            // connection accepted before a later one's messages.
            if self.tx.send(Input::Opened(id)).is_err() {
                return false;
            }
            let spool = self.spool.as_ref().map(|s| s.batch(id));
            self.conns.insert(
                id,
                Conn {
                    stream,
                    pending: Vec::new(),
                    greeted: false,
                    skip: 0,
                    queued: false,
                    spool,
                },
            );
            // Bytes that came with the connection raise no further event.
            self.enqueue(id);
        }
    }

    /// One turn of reading `id`; false once the assembler is gone.
    fn serve(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return true;
        };
        let turn = read_turn(conn, &mut self.scratch);
        let cutting = match cut(conn, id, &self.tx) {
            Ok(c) => c,
            Err(()) => return false,
        };
        if let Some(batch) = conn.spool.as_mut() {
            if let Err(e) = batch.flush() {
                eprintln!("roar-collector: spool write failed, spool dropped: {e}");
                conn.spool = None;
            }
        }
        match (cutting, turn) {
            (Cutting::Finished(input), _) => {
                self.forget(id);
                self.tx.send(input).is_ok() && self.tx.send(Input::Closed(id)).is_ok()
            }
            (Cutting::Refused, _) | (Cutting::Open, Turn::Ended) => {
                self.forget(id);
                self.tx.send(Input::Closed(id)).is_ok()
            }
            (Cutting::Open, Turn::More) => {
                self.ready.push_back(id);
                true
            }
            (Cutting::Open, Turn::Drained) => {
                conn.queued = false;
                true
            }
        }
    }

    fn forget(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.remove(&id) {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&conn.stream.as_raw_fd()));
        }
    }
}

/// Reads what `conn` has, up to a turn's worth.
fn read_turn(conn: &mut Conn, scratch: &mut [u8]) -> Turn {
    let mut got = 0;
    loop {
        match (&conn.stream).read(scratch) {
            Ok(0) => return Turn::Ended,
            Ok(n) => {
                conn.pending.extend_from_slice(&scratch[..n]);
                got += n;
                if got >= TURN_BYTES {
                    return Turn::More;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Turn::Drained,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Turn::Ended,
        }
    }
}

/// Cuts the whole frames out of `conn`'s bytes and sends them on; `Err`
/// once the assembler is gone.
fn cut(conn: &mut Conn, id: ConnId, tx: &Sender<Input>) -> Result<Cutting, ()> {
    let mut at = 0;
    let verdict = loop {
        let rest = &conn.pending[at..];
        if !conn.greeted {
            let Some(preamble) = rest.get(..PREAMBLE_LEN) else {
                break Cutting::Open;
            };
            let preamble: &[u8; PREAMBLE_LEN] = preamble.try_into().expect("PREAMBLE_LEN bytes");
            if let Err(e) = check_preamble(preamble) {
                let msg = format!("connection {id} refused: {e}");
                eprintln!("roar-collector: {msg}");
                tx.send(Input::Warning(msg)).map_err(|_| ())?;
                break Cutting::Refused;
            }
            conn.greeted = true;
            at += PREAMBLE_LEN;
            continue;
        }
        if conn.skip > 0 {
            let n = conn.skip.min(rest.len());
            conn.skip -= n;
            at += n;
            if conn.skip > 0 {
                break Cutting::Open;
            }
            continue;
        }
        match cut_frame(rest) {
            Cut::Partial => break Cutting::Open,
            Cut::TooLong(len) => {
                let e = FrameError::TooLong(len);
                eprintln!("roar-collector: connection {id}: dropped {e}");
                conn.skip = len;
                at += FRAME_PREFIX;
            }
            Cut::Frame { end } => {
                let payload = &rest[FRAME_PREFIX..end];
                at += end;
                if let Some(batch) = conn.spool.as_mut() {
                    batch.frame(payload);
                }
                match decode::<Message>(payload) {
                    Ok(msg @ Message::FinishJob(_)) => {
                        // The reply is written with blocking writes, on a
                        // stream this thread no longer reads.
                        if conn.stream.set_nonblocking(false).is_err() {
                            break Cutting::Refused;
                        }
                        match to_input(id, msg, Some(&conn.stream)) {
                            Some(input) => break Cutting::Finished(input),
                            None => break Cutting::Refused,
                        }
                    }
                    Ok(msg) => {
                        if let Some(input) = to_input(id, msg, None) {
                            tx.send(input).map_err(|_| ())?;
                        }
                    }
                    Err(e) => eprintln!("roar-collector: connection {id}: dropped {e}"),
                }
            }
        }
    };
    conn.pending.drain(..at);
    if conn.pending.is_empty() && conn.pending.capacity() > KEEP_BUFFER {
        conn.pending = Vec::new();
    }
    Ok(verdict)
}
