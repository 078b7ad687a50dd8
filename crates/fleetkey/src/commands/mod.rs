//! One module per subcommand.

pub mod audit;
pub mod backup;
pub mod compliance;
pub mod custody;
pub mod demo;
pub mod devices;
mod escrow;
pub mod factory;
pub mod fleets;
pub mod inspect;
pub mod keygen;
pub mod keys;
mod keys_lifecycle;
mod listing;
pub mod seal;
pub mod serve;
pub mod shell;
pub mod tokens;
pub mod unseal;
pub mod verify;

use crate::error::{CliError, CliResult};
use fleetkey_crypto::envelope::{Header, MAX_HEADER_LEN, armor};
use std::io::Read;

/// Largest armored input, and largest single-shot (mode 1) body, held in memory.
pub const MAX_IN_MEMORY: u64 = 256 * 1024 * 1024;

/// The start of an envelope: its header, the header bytes, body bytes already
/// read, and the reader for the rest. Armored input is decoded here.
pub struct EnvelopeStart {
    pub header: Header,
    pub header_bytes: Vec<u8>,
    pub body_start: Vec<u8>,
    pub rest: Box<dyn Read>,
}

pub fn read_up_to(reader: &mut dyn Read, limit: u64, what: &str) -> CliResult<Vec<u8>> {
    let mut buf = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::io(what, &e))?;
    if buf.len() as u64 > limit {
        return Err(CliError::refused(format!(
            "{what} is larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

/// Reads the header from `reader`, decoding `fk1:` armor if present.
pub fn read_envelope_start(mut reader: Box<dyn Read>, name: &str) -> CliResult<EnvelopeStart> {
    let mut first = Vec::with_capacity(MAX_HEADER_LEN);
    (&mut *reader)
        .take(MAX_HEADER_LEN as u64)
        .read_to_end(&mut first)
        .map_err(|e| CliError::io(name, &e))?;
    if armor::is_armored(&first) {
        let rest = read_up_to(&mut *reader, MAX_IN_MEMORY, name)?;
        first.extend_from_slice(&rest);
        let text =
            String::from_utf8(first).map_err(|_| CliError::refused("armored input is not text"))?;
        let bytes = armor::decode(&text).map_err(crate::error::envelope_error)?;
        let (header, len) = Header::parse(&bytes).map_err(crate::error::envelope_error)?;
        let mut header_bytes = bytes;
        let body_start = header_bytes.split_off(len);
        return Ok(EnvelopeStart {
            header,
            header_bytes,
            body_start,
            rest: Box::new(std::io::empty()),
        });
    }
    let (header, len) = Header::parse(&first).map_err(crate::error::envelope_error)?;
    let body_start = first.split_off(len);
    Ok(EnvelopeStart {
        header,
        header_bytes: first,
        body_start,
        rest: reader,
    })
}
