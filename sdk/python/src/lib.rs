//! `fleetkey._native`: the fk1 formats in process for the Python SDK.
//!
//! Thin bindings over `fleetkey-crypto` (no cryptography here): envelopes under a
//! data key (mode 4, KMS-style envelope encryption), envelopes to an X-Wing
//! recipient (mode 3) and their opening with an identity, header parsing, the
//! canonical encryption-context encoding, and offline signature checks. The
//! Python package (`sdk/python/python/fleetkey`) wraps these with the HTTP client;
//! docs/formats.md specifies every byte.
//!
//! Secrets handed in from Python (data keys, identity files) are copied into
//! zeroizing buffers; Python's own copies are the caller's to drop. The GIL is
//! released while sealing or opening, so threads seal in parallel.

use fleetkey_crypto::aead::{AeadKey, Algorithm};
use fleetkey_crypto::envelope::{
    Body, DEFAULT_SEGMENT_LOG2, Header, context, io as eio, recipient, stream,
};
use fleetkey_crypto::keyfile::{IdentityFile, parse_recipient};
use fleetkey_crypto::secret::SecretBytes;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

pyo3::create_exception!(
    _native,
    EnvelopeError,
    PyException,
    "An envelope was refused locally: not an envelope, malformed, truncated, or it \
     does not open (wrong key, tampered, other associated data)."
);

fn refused(e: fleetkey_crypto::Error) -> PyErr {
    EnvelopeError::new_err(e.to_string())
}

fn stream_refused(e: eio::StreamError) -> PyErr {
    match e {
        eio::StreamError::Io(e) => PyOSError::new_err(e.to_string()),
        eio::StreamError::Envelope(e) => refused(e),
        other => EnvelopeError::new_err(other.to_string()),
    }
}

fn algorithm(name: &str) -> PyResult<Algorithm> {
    Algorithm::from_name(name).map_err(|_| {
        PyValueError::new_err(format!(
            "unknown algorithm {name:?}: choose aes-256-gcm, chacha20-poly1305 or aes-256-gcm-siv"
        ))
    })
}

fn segment_log2(s: u8) -> PyResult<u8> {
    if fleetkey_crypto::envelope::SEGMENT_LOG2_RANGE.contains(&s) {
        Ok(s)
    } else {
        Err(PyValueError::new_err(
            "segment_log2 must be between 10 and 20",
        ))
    }
}

fn data_key(algorithm: Algorithm, key: &[u8]) -> PyResult<AeadKey> {
    let secret = SecretBytes::from_slice(key)
        .map_err(|_| PyValueError::new_err("a data key is 32 bytes"))?;
    AeadKey::new(algorithm, secret).map_err(refused)
}

/// A parsed fk1 header (docs/formats.md, "Header").
#[pyclass(frozen, get_all, module = "fleetkey._native")]
struct EnvelopeHeader {
    /// `single`, `stream`, `recipient` or `wrapped`.
    mode: &'static str,
    /// The body's AEAD: `aes-256-gcm`, `chacha20-poly1305` or `aes-256-gcm-siv`.
    algorithm: &'static str,
    /// The key (keyring name, key file id, or `xwing-…` recipient id).
    key_id: String,
    /// The key's version.
    key_version: u32,
    /// How many bytes the header takes.
    length: usize,
    /// Mode 4: the data key as the keyring sealed it (open it with the keyring).
    wrapped: Option<Py<PyBytes>>,
}

#[pymethods]
impl EnvelopeHeader {
    fn __repr__(&self) -> String {
        format!(
            "EnvelopeHeader(mode={:?}, algorithm={:?}, key_id={:?}, key_version={})",
            self.mode, self.algorithm, self.key_id, self.key_version
        )
    }
}

/// Parses the header at the start of `envelope` (a whole envelope, or at least its
/// first 1,203 bytes), with every refusal of the format.
#[pyfunction]
fn parse_header(py: Python<'_>, envelope: &[u8]) -> PyResult<EnvelopeHeader> {
    let (h, length) = Header::parse(envelope).map_err(refused)?;
    let wrapped = match &h.body {
        Body::Wrapped { wrapped, .. } => Some(PyBytes::new(py, wrapped).unbind()),
        _ => None,
    };
    Ok(EnvelopeHeader {
        mode: h.body.mode_name(),
        algorithm: h.algorithm.name(),
        key_id: h.key_id.to_string(),
        key_version: h.key_version,
        length,
        wrapped,
    })
}

/// The canonical associated data of an encryption context, byte for byte the
/// service's (docs/formats.md, "Encryption context").
#[pyfunction]
fn encode_context<'py>(
    py: Python<'py>,
    context: BTreeMap<String, String>,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = context::encode(&context).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &bytes))
}

/// The mode-4 header and sealer for `wrapped` (a mode-1 envelope of a keyring,
/// whose own header names the keyring and version the outer header repeats).
fn wrapped_sealer(
    key: &[u8],
    wrapped: &[u8],
    algorithm_name: &str,
    log2: u8,
    aad: &[u8],
) -> PyResult<(Vec<u8>, stream::StreamSealer)> {
    let key = data_key(algorithm(algorithm_name)?, key)?;
    let (inner, _) = Header::parse(wrapped).map_err(|e| {
        PyValueError::new_err(format!("wrapped is not a keyring's sealed data key: {e}"))
    })?;
    stream::seal_wrapped(
        &key,
        &inner.key_id,
        inner.key_version,
        segment_log2(log2)?,
        wrapped.to_vec(),
        aad,
    )
    .map_err(refused)
}

/// Seals `plaintext` as a mode-4 envelope under a data key: `key` is the data key's
/// 32 plaintext bytes, `wrapped` the same key as the keyring sealed it (both from
/// `POST /v1/keyrings/{name}/datakey`), `aad` the same associated data the data key
/// was made with.
#[pyfunction]
#[pyo3(signature = (key, wrapped, plaintext, aad, algorithm="aes-256-gcm", segment_log2=DEFAULT_SEGMENT_LOG2))]
fn seal_wrapped<'py>(
    py: Python<'py>,
    key: &[u8],
    wrapped: &[u8],
    plaintext: &[u8],
    aad: &[u8],
    algorithm: &str,
    segment_log2: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let (header, sealer) = wrapped_sealer(key, wrapped, algorithm, segment_log2, aad)?;
    let out = py.detach(|| seal_to_vec(&header, sealer, plaintext))?;
    Ok(PyBytes::new(py, &out))
}

/// [`seal_wrapped`] from the file `src` to the file `dst`, in constant memory.
/// `dst` appears only once it is complete (written beside it, then renamed).
/// Returns the plaintext length.
#[pyfunction]
#[pyo3(signature = (key, wrapped, src, dst, aad, algorithm="aes-256-gcm", segment_log2=DEFAULT_SEGMENT_LOG2))]
#[allow(clippy::too_many_arguments)]
fn seal_wrapped_file(
    py: Python<'_>,
    key: &[u8],
    wrapped: &[u8],
    src: PathBuf,
    dst: PathBuf,
    aad: &[u8],
    algorithm: &str,
    segment_log2: u8,
) -> PyResult<u64> {
    let (header, sealer) = wrapped_sealer(key, wrapped, algorithm, segment_log2, aad)?;
    py.detach(|| {
        let input = std::fs::File::open(&src).map_err(|e| io_error(&src, &e))?;
        atomic_write(&dst, |out| {
            eio::seal(
                &header,
                sealer,
                std::io::BufReader::new(input),
                out,
                &mut |_| {},
            )
        })
    })
}

/// Opens a mode-4 envelope whose data key (`key`, 32 bytes) the keyring unwrapped.
#[pyfunction]
fn open_wrapped<'py>(
    py: Python<'py>,
    envelope: &[u8],
    key: &[u8],
    aad: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let out = py.detach(|| {
        let mut input = envelope;
        let (header, header_bytes, rest) = eio::read_header(&mut input).map_err(stream_refused)?;
        let opener = wrapped_opener(&header, &header_bytes, key, aad)?;
        let mut plain = Vec::with_capacity(envelope.len());
        eio::open(opener, rest, input, &mut plain, &mut |_| {}).map_err(stream_refused)?;
        Ok::<_, PyErr>(plain)
    })?;
    Ok(PyBytes::new(py, &out))
}

/// Reads the header of the envelope in the file `path` (to send its wrapped key
/// to the keyring before [`open_wrapped_file`]).
#[pyfunction]
fn read_header_file(py: Python<'_>, path: PathBuf) -> PyResult<EnvelopeHeader> {
    let mut start = Vec::with_capacity(fleetkey_crypto::envelope::MAX_HEADER_LEN);
    let file = std::fs::File::open(&path).map_err(|e| io_error(&path, &e))?;
    file.take(fleetkey_crypto::envelope::MAX_HEADER_LEN as u64)
        .read_to_end(&mut start)
        .map_err(|e| io_error(&path, &e))?;
    parse_header(py, &start)
}

/// Opens the mode-4 envelope in the file `src` into the file `dst` in constant
/// memory; `dst` appears only if every segment verified. Returns the plaintext
/// length.
#[pyfunction]
fn open_wrapped_file(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    key: &[u8],
    aad: &[u8],
) -> PyResult<u64> {
    py.detach(|| {
        let mut input =
            std::io::BufReader::new(std::fs::File::open(&src).map_err(|e| io_error(&src, &e))?);
        let (header, header_bytes, rest) = eio::read_header(&mut input).map_err(stream_refused)?;
        let opener = wrapped_opener(&header, &header_bytes, key, aad)?;
        atomic_write(&dst, |out| eio::open(opener, rest, input, out, &mut |_| {}))
    })
}

fn wrapped_opener(
    header: &Header,
    header_bytes: &[u8],
    key: &[u8],
    aad: &[u8],
) -> PyResult<stream::StreamOpener> {
    if !matches!(header.body, Body::Wrapped { .. }) {
        return Err(EnvelopeError::new_err(format!(
            "this is a {} envelope, not one sealed under a data key (mode 4)",
            header.body.mode_name()
        )));
    }
    let key = data_key(header.algorithm, key)?;
    stream::open_symmetric(&key, header, header_bytes, aad).map_err(refused)
}

/// Seals `plaintext` to an X-Wing recipient (mode 3): `recipient` is an `fk1r:…`
/// string (an `x-wing` keyring's public key, or an identity's recipient).
#[pyfunction]
#[pyo3(signature = (recipient, plaintext, aad, algorithm="aes-256-gcm", segment_log2=DEFAULT_SEGMENT_LOG2))]
fn seal_to_recipient<'py>(
    py: Python<'py>,
    recipient: &str,
    plaintext: &[u8],
    aad: &[u8],
    algorithm: &str,
    segment_log2: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let to = parse_recipient(recipient).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let (header, sealer) = recipient::seal(
        &to,
        self::algorithm(algorithm)?,
        self::segment_log2(segment_log2)?,
        aad,
    )
    .map_err(refused)?;
    let out = py.detach(|| seal_to_vec(&header, sealer, plaintext))?;
    Ok(PyBytes::new(py, &out))
}

/// A new X-Wing identity: the identity file's text (a secret: store it as
/// docs/formats.md says, mode 0600).
#[pyfunction]
fn generate_identity() -> PyResult<String> {
    let id = IdentityFile::generate().map_err(refused)?;
    Ok(id.to_text().to_string())
}

/// The identity file's text for an X-Wing secret key (its 32-byte seed), e.g. one
/// kept in a secrets manager.
#[pyfunction]
fn identity_from_secret(secret: &[u8]) -> PyResult<String> {
    let seed = SecretBytes::from_slice(secret)
        .map_err(|_| PyValueError::new_err("an X-Wing secret key is 32 bytes"))?;
    let identity = fleetkey_crypto::hpke::XWingIdentity::from_seed(seed).map_err(refused)?;
    let key_id = recipient::recipient_key_id(&identity.recipient());
    Ok(IdentityFile { identity, key_id }.to_text().to_string())
}

/// The `fk1r:` recipient string of an identity file's text.
#[pyfunction]
fn identity_recipient(identity: &str) -> PyResult<String> {
    Ok(load_identity(identity)?.recipient_string())
}

fn load_identity(text: &str) -> PyResult<IdentityFile> {
    // Never echo the text: it holds the secret key.
    IdentityFile::parse(text).map_err(|e| PyValueError::new_err(format!("identity: {e}")))
}

/// Opens a mode-3 envelope with an identity (the identity file's text).
#[pyfunction]
fn open_with_identity<'py>(
    py: Python<'py>,
    identity: &str,
    envelope: &[u8],
    aad: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let id = load_identity(identity)?;
    let out = py.detach(|| {
        let mut input = envelope;
        let (header, header_bytes, rest) = eio::read_header(&mut input).map_err(stream_refused)?;
        if !matches!(header.body, Body::Recipient { .. }) {
            return Err(EnvelopeError::new_err(format!(
                "this is a {} envelope, not one sealed to a recipient (mode 3)",
                header.body.mode_name()
            )));
        }
        if header.key_id != id.key_id {
            return Err(EnvelopeError::new_err(format!(
                "wrong identity: the envelope was sealed to {}, this identity is {}",
                header.key_id, id.key_id
            )));
        }
        let opener = recipient::open(&id.identity, &header, &header_bytes, aad).map_err(refused)?;
        let mut plain = Vec::with_capacity(envelope.len());
        eio::open(opener, rest, input, &mut plain, &mut |_| {}).map_err(stream_refused)?;
        Ok(plain)
    })?;
    Ok(PyBytes::new(py, &out))
}

/// The text armor of an envelope: `fk1:` and unpadded base64url.
#[pyfunction]
fn armor(envelope: &[u8]) -> String {
    fleetkey_crypto::envelope::armor::encode(envelope)
}

/// The envelope of a text armor (strict: one form per envelope, one trailing line
/// ending at most).
#[pyfunction]
fn unarmor<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = fleetkey_crypto::envelope::armor::decode(text).map_err(refused)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Whether `signature` over `message` verifies under `public_key` for a keyring
/// type: `ed25519` (32-byte key), `ml-dsa-65` (1,952) or `ed25519+ml-dsa-65`
/// (1,984; both must verify). False for any wrong length or bad signature.
#[pyfunction]
fn verify(
    py: Python<'_>,
    algorithm: &str,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> PyResult<bool> {
    let check = match algorithm {
        "ed25519" => fleetkey_crypto::ed25519::verify,
        "ml-dsa-65" => fleetkey_crypto::mldsa::verify,
        "ed25519+ml-dsa-65" => fleetkey_crypto::composite::verify,
        other => {
            return Err(PyValueError::new_err(format!(
                "no offline verification for {other:?}: choose ed25519, ml-dsa-65 or ed25519+ml-dsa-65"
            )));
        }
    };
    Ok(py.detach(|| check(public_key, message, signature).is_ok()))
}

fn seal_to_vec(header: &[u8], sealer: stream::StreamSealer, plaintext: &[u8]) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(header.len() + plaintext.len() + plaintext.len() / 1024 + 64);
    eio::seal(header, sealer, plaintext, &mut out, &mut |_| {}).map_err(stream_refused)?;
    Ok(out)
}

fn io_error(path: &std::path::Path, e: &std::io::Error) -> PyErr {
    PyOSError::new_err(format!("{}: {e}", path.display()))
}

/// Writes `dst` through a temporary file beside it, renamed into place only when
/// `write` succeeded; on failure nothing is left behind.
fn atomic_write(
    dst: &std::path::Path,
    write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> Result<u64, eio::StreamError>,
) -> PyResult<u64> {
    let dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_error(dir, &e))?;
    let n = {
        let mut out = std::io::BufWriter::new(tmp.as_file());
        let n = write(&mut out).map_err(stream_refused)?;
        std::io::Write::flush(&mut out).map_err(|e| io_error(dst, &e))?;
        n
    };
    tmp.as_file().sync_all().map_err(|e| io_error(dst, &e))?;
    tmp.persist(dst).map_err(|e| io_error(dst, &e.error))?;
    Ok(n)
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("EnvelopeError", m.py().get_type::<EnvelopeError>())?;
    m.add_class::<EnvelopeHeader>()?;
    m.add_function(wrap_pyfunction!(parse_header, m)?)?;
    m.add_function(wrap_pyfunction!(read_header_file, m)?)?;
    m.add_function(wrap_pyfunction!(encode_context, m)?)?;
    m.add_function(wrap_pyfunction!(seal_wrapped, m)?)?;
    m.add_function(wrap_pyfunction!(seal_wrapped_file, m)?)?;
    m.add_function(wrap_pyfunction!(open_wrapped, m)?)?;
    m.add_function(wrap_pyfunction!(open_wrapped_file, m)?)?;
    m.add_function(wrap_pyfunction!(seal_to_recipient, m)?)?;
    m.add_function(wrap_pyfunction!(open_with_identity, m)?)?;
    m.add_function(wrap_pyfunction!(generate_identity, m)?)?;
    m.add_function(wrap_pyfunction!(identity_recipient, m)?)?;
    m.add_function(wrap_pyfunction!(identity_from_secret, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(armor, m)?)?;
    m.add_function(wrap_pyfunction!(unarmor, m)?)?;
    Ok(())
}
