//! The wire contract between `libroar.so` (inside traced processes), the
//! collector and the CLI.
//!
//! A connection starts with an 8-byte preamble (`MAGIC` + protocol version,
//! little endian), then carries frames: a `u32` little-endian payload length
//! followed by one bincode-encoded [`Message`]. The preamble is plain bytes so
//! that a version mismatch is detected before anything is decoded.

pub mod env;
pub mod exe;
mod frame;
mod message;
pub mod sip;

pub use frame::{
    check_preamble, cut_frame, decode, encode, encode_into, preamble, read_frame, Cut, FrameError,
    FRAME_PREFIX, PREAMBLE_LEN,
};
pub use message::{access, Bytes, GitInfo, Hello, JobMeta, Message, Reply, UntracedReason};

/// Bumped whenever the encoding of [`Message`] or [`Reply`] changes.
pub const PROTOCOL_VERSION: u32 = 4;

/// First four bytes of every connection.
pub const MAGIC: [u8; 4] = *b"ROAR";

/// Largest frame payload a reader accepts; larger frames are dropped.
pub const MAX_FRAME_LEN: usize = 1 << 20;
