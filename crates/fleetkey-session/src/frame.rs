//! Limits and the wire framing (specified in `docs/protocol.md#framing`).
//!
//! On the wire every Noise message is preceded by its length as a big-endian
//! 16-bit integer (Noise specification §13), so a Noise message is 1 to 65,535
//! bytes. An application message larger than one Noise message is split into
//! chunks; each chunk's plaintext starts with a flag byte, `0x00` "more follows" or
//! `0x01` "final", so message boundaries are authenticated with the data.

use crate::error::{Error, Result};
use std::time::Duration;

/// The largest Noise message (Noise specification §3).
pub const MAX_NOISE_MESSAGE: usize = 65_535;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// The most application bytes one transport message carries (flag byte and tag
/// take the rest).
pub const MAX_CHUNK: usize = MAX_NOISE_MESSAGE - TAG_LEN - 1;
/// Flag byte: more chunks follow.
pub const FLAG_MORE: u8 = 0x00;
/// Flag byte: the last chunk of a message.
pub const FLAG_FINAL: u8 = 0x01;

/// Session limits. The defaults are the documented ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest handshake message, bytes (default 4 KiB).
    pub max_handshake_message: usize,
    /// Largest application message, bytes (default 16 MiB).
    pub max_message: usize,
    /// Time allowed for the whole handshake (default 30 s).
    pub handshake_timeout: Duration,
    /// Time a session may stay silent (default 60 s), enforced by the IO adapter.
    pub idle_timeout: Duration,
    /// Rekey each direction after this many transport messages (default 2^20).
    pub rekey_after: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_handshake_message: 4 * 1024,
            max_message: 16 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            rekey_after: 1 << 20,
        }
    }
}

/// Appends `BE16(len) ‖ msg`.
pub fn write_frame(out: &mut Vec<u8>, msg: &[u8]) -> Result<()> {
    let len = u16::try_from(msg.len())
        .ok()
        .filter(|&n| n > 0 && usize::from(n) <= MAX_NOISE_MESSAGE)
        .ok_or(Error::TooLarge {
            what: "noise message",
            len: msg.len(),
            limit: MAX_NOISE_MESSAGE,
        })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    Ok(())
}

/// Splits a byte stream into Noise messages (sans-IO: push bytes in, take frames out).
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
}

impl FrameReader {
    /// A reader refusing frames longer than `max_frame` (at most 65,535).
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_frame: max_frame.min(MAX_NOISE_MESSAGE),
        }
    }

    /// Changes the limit (for example from handshake to transport).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame.min(MAX_NOISE_MESSAGE);
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read more bytes into (an IO adapter's `read_buf` target),
    /// with room for at least `want` more bytes (at most what the current frame
    /// still needs when that is known, so an idle reader holds little memory).
    pub fn spare(&mut self, want: usize) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let need = match self.buf.as_slice() {
            [a, b, rest @ ..] => {
                (usize::from(u16::from_be_bytes([*a, *b]))).saturating_sub(rest.len())
            }
            _ => 2 - self.buf.len(),
        };
        self.buf.reserve(want.max(need.min(MAX_NOISE_MESSAGE + 2)));
        &mut self.buf
    }

    /// Frees the buffer when no partial frame is held (call when going idle).
    pub fn release(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Bytes held that do not form a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame, if there is one. A zero or over-limit length is refused
    /// as soon as its two length bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let avail = &self.buf[self.start..];
        if avail.len() < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([avail[0], avail[1]]));
        if len == 0 {
            return Err(Error::Malformed("frame of length zero"));
        }
        if len > self.max_frame {
            return Err(Error::TooLarge {
                what: "frame",
                len,
                limit: self.max_frame,
            });
        }
        if avail.len() < 2 + len {
            return Ok(None);
        }
        let frame = avail[2..2 + len].to_vec();
        self.start += 2 + len;
        if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_split_anywhere_reassemble() {
        let mut wire = Vec::new();
        for n in [1usize, 7, 300, 65_535] {
            write_frame(&mut wire, &vec![n.to_le_bytes()[0]; n]).unwrap();
        }
        for step in [1, 2, 3, 1000, wire.len()] {
            let mut r = FrameReader::new(MAX_NOISE_MESSAGE);
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                r.push(piece);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push(f.len());
                }
            }
            assert_eq!(got, [1, 7, 300, 65_535]);
            assert_eq!(r.pending(), 0);
        }
    }

    #[test]
    fn reads_into_the_spare_buffer_reassemble_and_release_keeps_partial_frames() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &[7; 1000]).unwrap();
        write_frame(&mut wire, &[8; 3]).unwrap();
        let mut r = FrameReader::new(MAX_NOISE_MESSAGE);
        let mut got = Vec::new();
        for piece in wire.chunks(100) {
            let b = r.spare(16);
            assert!(b.capacity() - b.len() >= 16);
            b.extend_from_slice(piece);
            // Releasing while a frame is incomplete must not lose it.
            r.release();
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![vec![7; 1000], vec![8; 3]]);
        r.release();
        assert_eq!(r.pending(), 0);
        // Knowing the frame length, the reader asks for what the frame still needs.
        r.push(&[0x01, 0x00]);
        assert!(r.spare(1).capacity() >= 2 + 256);
    }

    #[test]
    fn zero_and_oversized_lengths_are_refused_early() {
        let mut r = FrameReader::new(4096);
        r.push(&[0, 0]);
        assert_eq!(
            r.next_frame(),
            Err(Error::Malformed("frame of length zero"))
        );
        let mut r = FrameReader::new(4096);
        r.push(&[0x10, 0x01]);
        assert!(matches!(
            r.next_frame(),
            Err(Error::TooLarge { len: 4097, .. })
        ));
        assert!(write_frame(&mut Vec::new(), &[]).is_err());
        assert!(write_frame(&mut Vec::new(), &vec![0; 65_536]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn the_reader_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048), max in 0usize..70_000) {
            let mut r = FrameReader::new(max);
            r.push(&data);
            for _ in 0..64 {
                match r.next_frame() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
}
