//! Wrapping with AES-256-GCM in the token (`CKM_AES_GCM` through `C_Encrypt`
//! and `C_Decrypt`): a random 96-bit IV, the wrap context as associated data, a
//! 128-bit tag. Stored bytes: `0x01 ‖ IV ‖ ciphertext ‖ tag`. The same calls seal
//! and open for resident keyrings, with the keyring's nonce as the IV.

use super::token_err;
use crate::error::{Error, Result};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

/// First byte of a token-wrapped key: the format (AES-256-GCM by the token).
pub(super) const WRAP_GCM_V1: u8 = 0x01;
pub(super) const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const TAG_BITS: u64 = 128;

/// AES-256-GCM in the token under `key` with `iv` (a 128-bit tag): ciphertext ‖ tag.
pub(super) fn gcm_seal(
    s: &Session,
    key: ObjectHandle,
    iv: &mut [u8; IV_LEN],
    aad: &[u8],
    pt: &[u8],
) -> Result<Vec<u8>> {
    let params = GcmParams::new(iv, aad, cryptoki::types::Ulong::from(TAG_BITS))
        .map_err(|e| token_err("gcm parameters", e))?;
    s.encrypt(&Mechanism::AesGcm(params), key, pt)
        .map_err(|e| token_err("encrypt", e))
}

/// Reverses [`gcm_seal`]; a tag that does not verify is [`fleetkey_crypto::Error::Open`].
pub(super) fn gcm_open(
    s: &Session,
    key: ObjectHandle,
    iv: &mut [u8; IV_LEN],
    aad: &[u8],
    ct: &[u8],
) -> Result<Vec<u8>> {
    let params = GcmParams::new(iv, aad, cryptoki::types::Ulong::from(TAG_BITS))
        .map_err(|e| token_err("gcm parameters", e))?;
    match s.decrypt(&Mechanism::AesGcm(params), key, ct) {
        Ok(pt) => Ok(pt),
        // The tag did not verify: tampered, another context or another key.
        // PKCS#11 says CKR_ENCRYPTED_DATA_INVALID; SoftHSM2 2.6 answers
        // CKR_GENERAL_ERROR. A token that is gone answers otherwise
        // (CKR_DEVICE_REMOVED, CKR_SESSION_HANDLE_INVALID, …): unavailable.
        Err(CkError::Pkcs11(
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange | RvError::GeneralError,
            _,
        )) => Err(Error::Envelope(fleetkey_crypto::Error::Open)),
        Err(e) => Err(token_err("decrypt", e)),
    }
}

pub(super) fn gcm_encrypt(
    s: &Session,
    key: ObjectHandle,
    pt: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let mut iv: [u8; IV_LEN] = fleetkey_crypto::rand::array()?;
    let ct = gcm_seal(s, key, &mut iv, aad, pt)?;
    let mut out = Vec::with_capacity(1 + IV_LEN + ct.len());
    out.push(WRAP_GCM_V1);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&ct);
    Ok(out)
}

pub(super) fn gcm_decrypt(
    s: &Session,
    key: ObjectHandle,
    wrapped: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let open = || Error::Envelope(fleetkey_crypto::Error::Open);
    let Some((&WRAP_GCM_V1, rest)) = wrapped.split_first() else {
        return Err(open());
    };
    if rest.len() < IV_LEN + TAG_LEN || rest.len() > IV_LEN + TAG_LEN + 1024 {
        return Err(open());
    }
    let (iv, ct) = rest.split_at(IV_LEN);
    let mut iv: [u8; IV_LEN] = iv.try_into().map_err(|_| open())?;
    gcm_open(s, key, &mut iv, aad, ct)
}
