#!/usr/bin/env python3
"""An independent X-Wing KEM and fk1 mode 3 (recipient), written from
docs/formats.md ("Mode 3: recipient"), draft-connolly-cfrg-xwing-kem-06 and
RFC 9180, on `kyber-py` (pure-Python ML-KEM-768) and `cryptography` (X25519,
HKDF, AEADs). Nothing here comes from fleetkey's Rust code.

Usage:
  fk1_xwing.py kat crates/fleetkey-crypto/tests/vectors/xwing-test-vectors.json
  fk1_xwing.py vectors docs/vectors/fk1.json          # opens the mode-3 vectors
  fk1_xwing.py seal RECIPIENT AAD_TEXT < plaintext > envelope
                                                      # seals to an fk1r: recipient
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kyber_py.ml_kem import ML_KEM_768

import fk1_open

LABEL = b"\\.//^\\"
KEM_ID, KDF_ID, AEAD_ID = 0x647A, 0x0001, 0xFFFF
INFO = b"fleetkey fk1 recipient"
EXPORT_CONTEXT = b"fleetkey fk1 stream key"


# ------------------------------------------------------------------ X-Wing (draft 06)

def x25519(scalar, point):
    return X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(point))


def x25519_base(scalar):
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def expand(sk):
    e = hashlib.shake_256(sk).digest(96)
    ek_m, dk_m = ML_KEM_768.key_derive(e[:64])
    sk_x = e[64:96]
    return ek_m, dk_m, sk_x, x25519_base(sk_x)


def public_key(sk):
    ek_m, _, _, pk_x = expand(sk)
    return ek_m + pk_x


def combine(ss_m, ss_x, ct_x, pk_x):
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + LABEL).digest()


def encaps(pk, eseed=None):
    if len(pk) != 1216:
        raise ValueError("x-wing public key must be 1216 bytes")
    eseed = eseed if eseed is not None else os.urandom(64)
    pk_m, pk_x = pk[:1184], pk[1184:]
    ss_m, ct_m = ML_KEM_768._encaps_internal(pk_m, eseed[:32])
    ek_x = eseed[32:64]
    ct_x = x25519_base(ek_x)
    ss_x = x25519(ek_x, pk_x)
    return combine(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x


def decaps(sk, ct):
    _, dk_m, sk_x, pk_x = expand(sk)
    ct_m, ct_x = ct[:1088], ct[1088:]
    ss_m = ML_KEM_768.decaps(dk_m, ct_m)
    ss_x = x25519(sk_x, ct_x)
    return combine(ss_m, ss_x, ct_x, pk_x)


# ------------------------------------------------------------------ HPKE (RFC 9180), export only

SUITE = b"HPKE" + struct.pack(">HHH", KEM_ID, KDF_ID, AEAD_ID)


def extract(salt, ikm):
    return hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()


def expand_hkdf(prk, info, length):
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def labeled_extract(salt, label, ikm):
    return extract(salt, b"HPKE-v1" + SUITE + label + ikm)


def labeled_expand(prk, label, info, length):
    return expand_hkdf(prk, struct.pack(">H", length) + b"HPKE-v1" + SUITE + label + info, length)


def exporter_secret(shared_secret, info):
    # Base mode (0), no PSK.
    psk_id_hash = labeled_extract(b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(shared_secret, b"secret", b"")
    return labeled_expand(secret, b"exp", context, 32)


def export(exp_secret, exporter_context, length):
    return labeled_expand(exp_secret, b"sec", exporter_context, length)


def stream_key(shared_secret):
    return export(exporter_secret(shared_secret, INFO), EXPORT_CONTEXT, 32)


# ------------------------------------------------------------------ fk1 mode 3

def recipient_key_id(pk):
    return "xwing-" + hashlib.sha256(b"fleetkey recipient id" + pk).digest()[:8].hex()


def parse_recipient(text):
    text = text.strip()
    if not text.startswith("fk1r:"):
        raise ValueError("expected fk1r:")
    body = text[5:]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def seal(pk, plaintext, aad, alg=1, s=16):
    """A whole mode-3 envelope (AES-256-GCM by default) of `plaintext` to `pk`."""
    ss, enc = encaps(pk)
    kid = recipient_key_id(pk).encode()
    header = b"fken" + bytes([1, 3, alg, len(kid)]) + kid + struct.pack(">I", 1)
    header += bytes([s]) + struct.pack(">HHH", KEM_ID, KDF_ID, len(enc)) + enc
    aead = fk1_open.AEADS[alg](stream_key(ss))
    d = hashlib.sha256(header + aad).digest()
    seg = 1 << s
    pieces = [plaintext[i:i + seg] for i in range(0, len(plaintext), seg)] or [b""]
    body = b""
    for i, p in enumerate(pieces):
        last = i == len(pieces) - 1
        body += aead.encrypt(i.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), p, d)
    return header + body


def open_recipient(sk, env, aad):
    if len(env) < 13 or env[5] != 3:
        raise fk1_open.Refused("not a mode-3 envelope")
    n = env[7]
    p = 8 + n + 4
    s = env[p]
    kem, kdf, enc_len = struct.unpack(">HHH", env[p + 1:p + 7])
    if (kem, kdf, enc_len) != (KEM_ID, KDF_ID, 1120) or not 10 <= s <= 20:
        raise fk1_open.Refused("bad mode-3 header")
    enc = env[p + 7:p + 7 + 1120]
    hlen = p + 7 + 1120
    key = stream_key(decaps(sk, enc))
    # The body is a mode-2 body under this key: reuse the independent opener's
    # STREAM by building the key-derivation-free path here.
    header, body = env[:hlen], env[hlen:]
    aead = fk1_open.AEADS[env[6]](key)
    d = hashlib.sha256(header + aad).digest()
    seg = (1 << s) + 16
    out, pos, i = [], 0, 0
    while True:
        chunk = body[pos:pos + seg]
        pos += len(chunk)
        last = pos == len(body)
        if len(chunk) < 16 or (last and len(chunk) == 16 and i > 0):
            raise fk1_open.Refused("truncated or malformed")
        try:
            out.append(aead.decrypt(i.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), chunk, d))
        except Exception:
            raise fk1_open.Refused("cannot open segment %d" % i)
        if last:
            return b"".join(out)
        i += 1


def main(argv):
    if len(argv) == 3 and argv[1] == "kat":
        vectors = json.load(open(argv[2]))
        for v in vectors:
            sk, pk = bytes.fromhex(v["sk"]), bytes.fromhex(v["pk"])
            assert public_key(sk) == pk, "public key"
            ss, ct = encaps(pk, bytes.fromhex(v["eseed"]))
            assert (ss.hex(), ct.hex()) == (v["ss"], v["ct"]), "encaps"
            assert decaps(sk, ct).hex() == v["ss"], "decaps"
        print("python x-wing: %d draft-06 vectors agree" % len(vectors))
        return 0
    if len(argv) == 3 and argv[1] == "vectors":
        doc = json.load(open(argv[2]))
        n = 0
        for v in doc["vectors"]:
            if v["mode"] != "recipient":
                continue
            sk = bytes.fromhex(v["identity_seed"])
            env, aad = bytes.fromhex(v["envelope"]), bytes.fromhex(v["aad"])
            assert open_recipient(sk, env, aad) == bytes.fromhex(v["plaintext"]), v["name"]
            bad = bytearray(env)
            bad[-1] ^= 1
            try:
                open_recipient(sk, bytes(bad), aad)
                raise AssertionError("tampered envelope opened")
            except fk1_open.Refused:
                pass
            # Round trip: what this sealer makes, this opener opens.
            pk = public_key(sk)
            assert open_recipient(sk, seal(pk, b"x" * 70000, b"a", s=10), b"a") == b"x" * 70000
            n += 1
        print("python fk1 mode 3: %d recipient vectors open" % n)
        return 0 if n else 1
    if len(argv) == 4 and argv[1] == "seal":
        pk = parse_recipient(argv[2])
        sys.stdout.buffer.write(seal(pk, sys.stdin.buffer.read(), argv[3].encode()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
