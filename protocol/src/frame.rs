use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::{MAGIC, MAX_FRAME_LEN, PROTOCOL_VERSION};

pub const PREAMBLE_LEN: usize = 8;
const LEN_PREFIX: usize = 4;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// The bytes that open every connection.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..4].copy_from_slice(&MAGIC);
    p[4..].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    p
}

#[derive(Debug)]
pub enum FrameError {
    Io(io::Error),
    /// The peer does not speak this protocol at all.
    BadMagic,
    /// The peer speaks another version of it.
    Version {
        theirs: u32,
        ours: u32,
    },
    /// A frame longer than [`MAX_FRAME_LEN`]; its bytes were skipped.
    TooLong(usize),
    Decode(String),
    Encode(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "i/o error: {e}"),
            FrameError::BadMagic => write!(f, "peer is not a roar component (bad magic)"),
            FrameError::Version { theirs, ours } => write!(
                f,
                "protocol version mismatch: peer speaks v{theirs}, this build speaks v{ours} \
                 (roar, roar-collector and libroar.so must come from the same build)"
            ),
            FrameError::TooLong(n) => {
                write!(f, "frame of {n} bytes exceeds the {MAX_FRAME_LEN}-byte cap")
            }
            FrameError::Decode(e) => write!(f, "undecodable frame: {e}"),
            FrameError::Encode(e) => write!(f, "cannot encode frame: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

pub fn check_preamble(p: &[u8; PREAMBLE_LEN]) -> Result<(), FrameError> {
    if p[..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let theirs = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
    if theirs != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            theirs,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// Encodes one length-prefixed frame into `out` without allocating; returns
/// the number of bytes written, or an error when `out` is too small.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut [u8]) -> Result<usize, FrameError> {
    if out.len() < LEN_PREFIX {
        return Err(FrameError::Encode("buffer too small".into()));
    }
    let n = bincode::serde::encode_into_slice(msg, &mut out[LEN_PREFIX..], config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    out[..LEN_PREFIX].copy_from_slice(&(n as u32).to_le_bytes());
    Ok(LEN_PREFIX + n)
}

/// Encodes one length-prefixed frame into a new buffer.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let payload = bincode::serde::encode_to_vec(msg, config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    if payload.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(payload.len()));
    }
    let mut out = Vec::with_capacity(LEN_PREFIX + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Reads the next frame's payload into `buf`. `Ok(false)` is a clean end of
/// stream. An oversized frame is skipped and reported as `TooLong`, leaving
/// the stream positioned at the next frame.
pub fn read_frame<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    let mut len = [0u8; LEN_PREFIX];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_LEN {
        io::copy(&mut r.take(len as u64), &mut io::sink())?;
        return Err(FrameError::TooLong(len));
    }
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(true)
}

/// What the start of a buffer holds, for readers that cannot block.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// Not a whole frame yet.
    Partial,
    /// A whole frame, `end` bytes long; its payload is `buf[FRAME_PREFIX..end]`.
    Frame { end: usize },
    /// A frame longer than [`MAX_FRAME_LEN`] starts here: its prefix and
    /// then `len` payload bytes are to be skipped.
    TooLong(usize),
}

/// Bytes of the length prefix before every frame's payload.
pub const FRAME_PREFIX: usize = LEN_PREFIX;

/// Finds the frame at the start of `buf`, the framing [`read_frame`] reads.
pub fn cut_frame(buf: &[u8]) -> Cut {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Cut::Partial;
    };
    let len = u32::from_le_bytes(prefix.try_into().expect("four bytes")) as usize;
    if len > MAX_FRAME_LEN {
        return Cut::TooLong(len);
    }
    if buf.len() < LEN_PREFIX + len {
        return Cut::Partial;
    }
    Cut::Frame {
        end: LEN_PREFIX + len,
    }
}

/// Decodes a payload read by [`read_frame`]; byte fields borrow from it.
pub fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, FrameError> {
    let (msg, used) = bincode::serde::borrow_decode_from_slice(payload, config())
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(FrameError::Decode(format!(
            "{} trailing bytes",
            payload.len() - used
        )));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames_are_cut_as_they_are_read() {
        let frame = encode(&7u32).unwrap();
        let mut buf = frame.clone();
        buf.extend_from_slice(&frame[..2]);
        assert_eq!(cut_frame(&buf[..3]), Cut::Partial);
        assert_eq!(cut_frame(&buf[..frame.len() - 1]), Cut::Partial);
        assert_eq!(cut_frame(&buf), Cut::Frame { end: frame.len() });
        assert_eq!(decode::<u32>(&buf[FRAME_PREFIX..frame.len()]).unwrap(), 7);
        assert_eq!(cut_frame(&buf[frame.len()..]), Cut::Partial);
        let huge = ((MAX_FRAME_LEN + 1) as u32).to_le_bytes();
        assert_eq!(cut_frame(&huge), Cut::TooLong(MAX_FRAME_LEN + 1));
    }

    use super::*;
    use crate::{access, Bytes, Message};

    #[test]
    fn frames_round_trip() {
        let msg = Message::Open {
            path: Bytes::borrowed(b"/data/\xffraw.csv"),
            access: access::READ,
            result: 3,
            t_ns: 42,
        };
        let mut buf = [0u8; 256];
        let n = encode_into(&msg, &mut buf).unwrap();
        assert_eq!(encode(&msg).unwrap(), &buf[..n]);
        let mut payload = Vec::new();
        assert!(read_frame(&mut &buf[..n], &mut payload).unwrap());
        let back: Message = decode(&payload).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn oversized_frame_is_skipped() {
        let mut stream = ((MAX_FRAME_LEN + 1) as u32).to_le_bytes().to_vec();
        stream.resize(4 + MAX_FRAME_LEN + 1, 0);
        stream.extend(encode(&Message::Exit { status: 1, t_ns: 0 }).unwrap());
        let mut r = &stream[..];
        let mut payload = Vec::new();
        assert!(matches!(
            read_frame(&mut r, &mut payload),
            Err(FrameError::TooLong(_))
        ));
        assert!(read_frame(&mut r, &mut payload).unwrap());
        let m: Message = decode(&payload).unwrap();
        assert_eq!(m, Message::Exit { status: 1, t_ns: 0 });
    }

    #[test]
    fn version_mismatch_is_named() {
        let mut p = preamble();
        assert!(check_preamble(&p).is_ok());
        p[4] = 99;
        let err = check_preamble(&p).unwrap_err().to_string();
        assert!(err.contains("v99"), "{err}");
        assert!(matches!(
            check_preamble(b"GET / HT"),
            Err(FrameError::BadMagic)
        ));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            decode::<Message>(&[0xff, 0xff, 0xff]),
            Err(FrameError::Decode(_))
        ));
    }
}
