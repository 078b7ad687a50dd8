#!/usr/bin/env python3
"""Checks signatures and MAC tags made by fleetkey keyrings with independent
implementations: Ed25519 with `cryptography` (from the PEM SubjectPublicKeyInfo),
ML-DSA-65 with `dilithium-py` (pure Python, FIPS 204), the composite as
docs/formats.md ("Composite signatures") specifies it, HMAC with the standard
library.

Usage: verify_signatures.py CASES.json
CASES: [{"algorithm", "message", "signature", "valid", and "public_key" (base64 raw),
         "pem" (Ed25519) or "key" (HMAC, base64)}]; every case's verdict must
         equal its "valid". An ML-DSA-65 case with "hash" ("sha-256" or "sha-512")
         is a HashML-DSA signature (FIPS 204 Algorithm 4, empty context) of the
         message's digest, which this script computes itself.
"""

import base64
import hashlib
import hmac
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from dilithium_py.ml_dsa import ML_DSA_65

COMPOSITE_PREFIX = b"fleetkey composite v1 Ed25519+ML-DSA-65\x00"
# DER of the hash OIDs (NIST 2.16.840.1.101.3.4.2.1 and .3), FIPS 204 Algorithm 4.
HASH_OIDS = {
    "sha-256": (bytes.fromhex("0609608648016503040201"), hashlib.sha256),
    "sha-512": (bytes.fromhex("0609608648016503040203"), hashlib.sha512),
}


def hash_ml_dsa_ok(pk, msg, sig, hash_name):
    oid, h = HASH_OIDS[hash_name]
    m_prime = b"\x01\x00" + oid + h(msg).digest()
    return len(pk) == 1952 and len(sig) == 3309 and ML_DSA_65._verify_internal(pk, m_prime, sig)


def ed25519_ok(pk, msg, sig):
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


def verdict(c):
    msg = base64.b64decode(c["message"])
    sig = base64.b64decode(c["signature"])
    alg = c["algorithm"]
    if alg.startswith("hmac-"):
        h = {"hmac-sha256": hashlib.sha256, "hmac-sha512": hashlib.sha512}[alg]
        return hmac.compare_digest(hmac.new(base64.b64decode(c["key"]), msg, h).digest(), sig)
    pk = base64.b64decode(c["public_key"])
    if alg == "ed25519":
        from_pem = load_pem_public_key(c["pem"].encode())
        assert from_pem.public_bytes(Encoding.Raw, PublicFormat.Raw) == pk, "PEM and raw keys differ"
        return ed25519_ok(pk, msg, sig)
    if alg == "ml-dsa-65" and "hash" in c:
        return hash_ml_dsa_ok(pk, msg, sig, c["hash"])
    if alg == "ml-dsa-65":
        return len(pk) == 1952 and len(sig) == 3309 and ML_DSA_65.verify(pk, msg, sig)
    if alg == "ed25519+ml-dsa-65":
        if len(pk) != 1984 or len(sig) != 3373:
            return False
        m = COMPOSITE_PREFIX + msg
        return ed25519_ok(pk[:32], m, sig[:64]) and ML_DSA_65.verify(pk[32:], m, sig[64:])
    raise SystemExit("unknown algorithm %r" % alg)


def main(path):
    cases = json.load(open(path))
    bad = [c for c in cases if verdict(c) != c["valid"]]
    for c in bad:
        print("MISMATCH %s valid=%s" % (c["algorithm"], c["valid"]))
    print("python signature interop: %d cases, %d mismatches" % (len(cases), len(bad)))
    return 1 if bad or not cases else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
