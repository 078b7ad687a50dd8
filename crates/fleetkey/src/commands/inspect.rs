//! `fleetkey inspect`.

use super::{EnvelopeStart, read_envelope_start};
use crate::cli::InspectArgs;
use crate::error::{CliError, CliResult};
use crate::files::open_input;
use fleetkey_crypto::{
    aead::TAG_LEN,
    envelope::{Body, VERSION},
};
use serde_json::json;

pub fn run(args: InspectArgs) -> CliResult<()> {
    let input = open_input(args.input.as_deref())?;
    let name = input.name.clone();
    let EnvelopeStart {
        header,
        header_bytes,
        body_start,
        mut rest,
    } = read_envelope_start(input.reader, &name)?;
    let body_len = body_start.len() as u64
        + std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| CliError::io(&name, &e))?;
    let mut doc = json!({
        "format": "fk1",
        "version": VERSION,
        "mode": header.body.mode_name(),
        "algorithm": header.algorithm.name(),
        "key_id": header.key_id.as_str(),
        "key_version": header.key_version,
        "header_bytes": header_bytes.len(),
        "body_bytes": body_len,
        "total_bytes": header_bytes.len() as u64 + body_len,
    });
    let stream_sizes = |doc: &mut serde_json::Value, segment_log2: u8| {
        let tag = TAG_LEN as u64;
        let seg = 1u64 << segment_log2;
        let segments = body_len.div_ceil(seg + tag).max(1);
        doc["segment_size"] = json!(seg);
        doc["segments"] = json!(segments);
        doc["plaintext_bytes"] = json!(body_len.checked_sub(segments * tag));
    };
    match &header.body {
        Body::Single { nonce } => {
            doc["nonce"] = json!(hex::encode(nonce));
            doc["plaintext_bytes"] = json!(body_len.checked_sub(TAG_LEN as u64));
        }
        Body::Stream { segment_log2, salt } => {
            stream_sizes(&mut doc, *segment_log2);
            doc["salt"] = json!(hex::encode(salt));
        }
        Body::Recipient { segment_log2, enc } => {
            stream_sizes(&mut doc, *segment_log2);
            doc["kem"] = json!("x-wing");
            doc["kdf"] = json!("hkdf-sha256");
            doc["enc_bytes"] = json!(enc.len());
        }
        Body::Wrapped {
            segment_log2,
            salt,
            wrapped,
        } => {
            stream_sizes(&mut doc, *segment_log2);
            doc["salt"] = json!(hex::encode(salt));
            doc["wrapped_key_bytes"] = json!(wrapped.len());
        }
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| CliError::refused(e.to_string()))?;
    crate::out!("{text}");
    Ok(())
}
