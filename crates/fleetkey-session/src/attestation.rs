//! Attestations for patterns without a static key (NN): the device signs the
//! handshake hash with its Ed25519 identity key and sends the signature as its
//! first transport message. The handshake hash is unique to the session (it covers
//! both ephemeral keys), so an attestation cannot be replayed into another session.

use crate::error::{Error, Result};
use fleetkey_crypto::ed25519::Ed25519Signer;

/// `"fleetkey nn attestation v1" ‖ 0x00 ‖ handshake hash`.
pub fn attestation_message(handshake_hash: &[u8]) -> Vec<u8> {
    let mut m = b"fleetkey nn attestation v1\0".to_vec();
    m.extend_from_slice(handshake_hash);
    m
}

/// Signs this session's handshake hash.
pub fn attest(signer: &Ed25519Signer, handshake_hash: &[u8]) -> [u8; 64] {
    signer.sign(&attestation_message(handshake_hash))
}

/// Checks an attestation against this session's handshake hash.
pub fn verify(public_key: &[u8], handshake_hash: &[u8], signature: &[u8]) -> Result<()> {
    fleetkey_crypto::ed25519::verify(public_key, &attestation_message(handshake_hash), signature)
        .map_err(|_| Error::Attestation)
}
