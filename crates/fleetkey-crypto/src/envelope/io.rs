//! `std::io` drivers for the sans-IO stream sealer and opener.
//!
//! Memory stays constant: two segment buffers, whatever the input size. The opener
//! writes a segment's plaintext only after that segment has verified.

use super::{Header, MAX_HEADER_LEN, stream::StreamOpener, stream::StreamSealer};
use crate::Error;
use std::io::{self, Read, Write};

/// A stream failed: either the I/O or the envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Reading input or writing output failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The envelope was refused.
    #[error(transparent)]
    Envelope(#[from] Error),
}

/// Reads until `buf` holds `want` bytes or the input ends.
fn fill<R: Read>(input: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
    while buf.len() < want {
        let start = buf.len();
        buf.resize(want, 0);
        match input.read(&mut buf[start..]) {
            Ok(0) => {
                buf.truncate(start);
                return Ok(());
            }
            Ok(n) => buf.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Writes `header`, then seals all of `input` to `output`. `progress` is called with
/// the number of plaintext bytes consumed so far. Returns the plaintext length.
pub fn seal<R: Read, W: Write>(
    header: &[u8],
    mut sealer: StreamSealer,
    mut input: R,
    mut output: W,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    output.write_all(header)?;
    let seg = sealer.segment_len();
    let mut cur = Vec::with_capacity(seg + super::stream::SEGMENT_OVERHEAD);
    let mut next = Vec::with_capacity(seg + super::stream::SEGMENT_OVERHEAD);
    let mut total = 0u64;
    fill(&mut input, &mut cur, seg)?;
    loop {
        let last = if cur.len() < seg {
            true
        } else {
            fill(&mut input, &mut next, seg)?;
            next.is_empty()
        };
        total += cur.len() as u64;
        sealer.seal_segment(&mut cur, last)?;
        output.write_all(&cur)?;
        progress(total);
        if last {
            break;
        }
        core::mem::swap(&mut cur, &mut next);
        next.clear();
    }
    output.flush()?;
    Ok(total)
}

/// Reads and parses an envelope header from `input`. Returns the header, its
/// bytes, and whatever body bytes were read past it.
pub fn read_header<R: Read>(input: &mut R) -> Result<(Header, Vec<u8>, Vec<u8>), StreamError> {
    let mut buf = Vec::with_capacity(MAX_HEADER_LEN);
    fill(input, &mut buf, MAX_HEADER_LEN)?;
    let (header, len) = Header::parse(&buf)?;
    let rest = buf.split_off(len);
    Ok((header, buf, rest))
}

/// Opens the stream body that follows a header: `already_read` holds body bytes
/// read together with the header. Returns the plaintext length.
pub fn open<R: Read, W: Write>(
    mut opener: StreamOpener,
    already_read: Vec<u8>,
    mut input: R,
    mut output: W,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    let seg = opener.sealed_segment_len();
    let mut cur = already_read;
    cur.reserve(seg.saturating_sub(cur.len()));
    let mut next = Vec::with_capacity(seg);
    let mut plain = Vec::with_capacity(seg);
    let mut total = 0u64;
    let mut consumed = 0u64;
    loop {
        if cur.len() > seg {
            // Only possible for the first buffer (header read-ahead).
            next = cur.split_off(seg);
        } else {
            fill(&mut input, &mut cur, seg)?;
        }
        let last = if cur.len() < seg {
            true
        } else {
            if next.is_empty() {
                fill(&mut input, &mut next, seg)?;
            }
            next.is_empty()
        };
        opener.open_segment(&cur, last, &mut plain)?;
        output.write_all(&plain)?;
        total += plain.len() as u64;
        consumed += cur.len() as u64;
        progress(consumed);
        if last {
            break;
        }
        core::mem::swap(&mut cur, &mut next);
        next.clear();
    }
    output.flush()?;
    Ok(total)
}
