"""The fk1 formats in process (docs/formats.md), through the native module: no
call to the service.

* :func:`seal_to` / :func:`open_with`: mode 3, sealed to an X-Wing recipient
  (``fk1r:…``, e.g. an ``x-wing`` keyring's public key) and opened with an identity.
* :func:`verify_signature`: Ed25519, ML-DSA-65 and the composite, offline, with a
  keyring's public key.
* :func:`parse_header`, :func:`encode_context`, :func:`armor`, :func:`unarmor`.

Envelopes under a data key (mode 4) need the service for the data key; they are
methods of the clients (``seal_local``, ``open_local``, ``seal_file``,
``open_file``).
"""

from __future__ import annotations

from typing import Mapping, Optional

from . import _native
from ._core import Data, to_bytes
from ._native import EnvelopeError, EnvelopeHeader

__all__ = [
    "EnvelopeError",
    "EnvelopeHeader",
    "aad_of",
    "armor",
    "encode_context",
    "generate_identity",
    "identity_from_secret",
    "open_with",
    "parse_header",
    "recipient_of",
    "seal_to",
    "unarmor",
    "verify_signature",
]

ALGORITHMS = ("aes-256-gcm", "chacha20-poly1305", "aes-256-gcm-siv")


def encode_context(context: Mapping[str, str]) -> bytes:
    """The canonical associated data of an encryption context, byte for byte the
    service's."""
    return _native.encode_context(dict(context))


def aad_of(aad: Optional[Data] = None, context: Optional[Mapping[str, str]] = None) -> bytes:
    """The associated data ``A`` of a binding: ``aad`` as given, a context's
    canonical encoding, or empty."""
    if aad is not None and context is not None:
        raise ValueError("pass aad or context, not both")
    if context is not None:
        return encode_context(context)
    return b"" if aad is None else to_bytes(aad)


def parse_header(envelope: bytes) -> EnvelopeHeader:
    """Reads an envelope's header with every refusal of the format."""
    return _native.parse_header(bytes(envelope))


def armor(envelope: bytes) -> str:
    """``fk1:`` and the envelope in unpadded base64url."""
    return _native.armor(bytes(envelope))


def unarmor(text: str) -> bytes:
    """The envelope of an armored text (strict)."""
    return _native.unarmor(text)


def seal_to(
    recipient: str,
    data: Data,
    *,
    aad: Optional[Data] = None,
    context: Optional[Mapping[str, str]] = None,
    algorithm: str = "aes-256-gcm",
) -> bytes:
    """Seals ``data`` to an X-Wing recipient (``fk1r:…``) as a mode-3 envelope:
    only the holder of the identity (or the ``x-wing`` keyring) opens it."""
    return _native.seal_to_recipient(recipient, to_bytes(data), aad_of(aad, context), algorithm)


def open_with(
    identity: str,
    envelope: bytes,
    *,
    aad: Optional[Data] = None,
    context: Optional[Mapping[str, str]] = None,
) -> bytes:
    """Opens a mode-3 envelope with an identity file's text (same aad or context
    as it was sealed with). Raises :class:`EnvelopeError` when it does not open."""
    return _native.open_with_identity(identity, bytes(envelope), aad_of(aad, context))


def generate_identity() -> str:
    """A new X-Wing identity file's text. It holds a secret key: store it like
    ``fleetkey keygen --identity`` does (mode 0600)."""
    return _native.generate_identity()


def identity_from_secret(secret: bytes) -> str:
    """The identity file's text for a 32-byte X-Wing secret key."""
    return _native.identity_from_secret(bytes(secret))


def recipient_of(identity: str) -> str:
    """The ``fk1r:`` recipient string of an identity file's text."""
    return _native.identity_recipient(identity)


def verify_signature(algorithm: str, public_key: bytes, message: Data, signature: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies under ``public_key`` for a
    keyring type (``ed25519``, ``ml-dsa-65``, ``ed25519+ml-dsa-65``), offline."""
    return _native.verify(algorithm, bytes(public_key), to_bytes(message), bytes(signature))
