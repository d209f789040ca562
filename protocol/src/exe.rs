//! Which executables escape the preload library, decided from their ELF
//! headers. Pure functions over bytes: the shim reads the file with raw
//! system calls, the CLI with std::fs, and both ask the same questions.

use crate::UntracedReason;

/// The headers of ordinary executables fit in the first page.
pub const HEAD_LEN: usize = 4096;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
/// The note Go's linker writes (`.note.go.buildid`): name "Go", type 4.
const NT_GO_BUILDID: u32 = 4;

/// A note segment to look into: where it is in the file and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteSegment {
    pub offset: u64,
    pub size: u64,
}

/// What the first page of an ELF file says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Headers {
    pub has_interpreter: bool,
    pub notes: Vec<NoteSegment>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads the program headers of a little-endian ELF file from its first
/// page; `None` when it is not one (a script, another format).
pub fn headers(head: &[u8]) -> Option<Headers> {
    if head.get(..4)? != b"\x7fELF" || *head.get(5)? != 1 {
        return None;
    }
    let is64 = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let (phoff, phentsize, phnum) = if is64 {
        (
            u64_at(head, 32)? as usize,
            u16_at(head, 54)?,
            u16_at(head, 56)?,
        )
    } else {
        (
            u32_at(head, 28)? as usize,
            u16_at(head, 42)?,
            u16_at(head, 44)?,
        )
    };
    let mut out = Headers::default();
    for i in 0..phnum as usize {
        let Some(at) = (i * phentsize as usize).checked_add(phoff) else {
            break;
        };
        let Some(kind) = u32_at(head, at) else { break };
        let (offset, size) = if is64 {
            (u64_at(head, at + 8)?, u64_at(head, at + 32)?)
        } else {
            (
                u64::from(u32_at(head, at + 4)?),
                u64::from(u32_at(head, at + 16)?),
            )
        };
        match kind {
            PT_INTERP => out.has_interpreter = true,
            PT_NOTE => out.notes.push(NoteSegment { offset, size }),
            _ => {}
        }
    }
    Some(out)
}

/// Whether a note segment's bytes hold Go's build-id note.
pub fn has_go_note(mut b: &[u8]) -> bool {
    let align4 = |n: usize| (n + 3) & !3;
    while let (Some(namesz), Some(descsz), Some(kind)) = (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8))
    {
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let name = b.get(12..12 + namesz).unwrap_or(&[]);
        // Go writes namesz 4: "Go" and two NULs.
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        if kind == NT_GO_BUILDID && &name[..end] == b"Go" {
            return true;
        }
        let next = 12 + align4(namesz) + align4(descsz);
        match b.get(next..) {
            Some(rest) if next > 12 => b = rest,
            _ => return false,
        }
    }
    false
}

/// The verdict: `secure` when the kernel will run the file in secure mode
/// (set-id bits for another user, on a mount that honours them);
/// `read_note` returns the bytes of a note segment that lies beyond `head`.
pub fn untraceable(
    head: &[u8],
    secure: bool,
    mut read_note: impl FnMut(NoteSegment) -> Vec<u8>,
) -> Option<UntracedReason> {
    if secure {
        return Some(UntracedReason::Setuid);
    }
    let h = headers(head)?;
    if !h.has_interpreter {
        return Some(UntracedReason::StaticallyLinked);
    }
    // Notes usually lie within the first page, already read.
    let within_head = |n: &NoteSegment| {
        let start = usize::try_from(n.offset).ok()?;
        head.get(start..start.checked_add(usize::try_from(n.size).ok()?)?)
    };
    h.notes
        .into_iter()
        .any(|n| match within_head(&n) {
            Some(bytes) => has_go_note(bytes),
            None => has_go_note(&read_note(n)),
        })
        .then_some(UntracedReason::GoRuntime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_dynamic_and_not_go() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let h = headers(&exe[..HEAD_LEN.min(exe.len())]).unwrap();
        assert!(h.has_interpreter);
        let read = |n: NoteSegment| exe[n.offset as usize..(n.offset + n.size) as usize].to_vec();
        assert_eq!(untraceable(&exe[..HEAD_LEN], false, read), None);
        assert_eq!(
            untraceable(&exe[..HEAD_LEN], true, read),
            Some(UntracedReason::Setuid)
        );
        assert_eq!(headers(b"#!/bin/sh\necho hi\n"), None);
    }

    #[test]
    fn go_note_is_found_among_others() {
        let mut seg = Vec::new();
        for (name, kind, desc) in [
            (&b"GNU\0"[..], 3u32, &[1u8; 20][..]),
            (b"Go\0\0", 4, b"abcdefgh"),
        ] {
            seg.extend_from_slice(&(name.len() as u32).to_le_bytes());
            seg.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            seg.extend_from_slice(&kind.to_le_bytes());
            seg.extend_from_slice(name);
            seg.extend_from_slice(desc);
        }
        assert!(has_go_note(&seg));
        assert!(!has_go_note(&seg[..36]));
    }
}
