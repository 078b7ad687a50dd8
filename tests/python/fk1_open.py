#!/usr/bin/env python3
"""An independent opener for fk1 envelopes, written from docs/formats.md alone.

It uses only the `cryptography` package (PyPI) and proves the format is specified
well enough to interoperate. Modes 1 (single), 2 (stream) and 4 (wrapped: a stream
under a data key, given here as the key; its wrapped form in the header opens as
mode 1 under the wrapping key) are implemented; mode 3 needs an X-Wing HPKE
implementation, which `cryptography` does not have.

Usage:
  fk1_open.py vectors docs/vectors/fk1.json
  fk1_open.py open KEYFILE ENVELOPE [--aad TEXT | --context KEY=VALUE ...]
                                                    # prints plaintext to stdout
"""

import base64
import hashlib
import json
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

AEADS = {1: AESGCM, 2: ChaCha20Poly1305, 3: AESGCMSIV}
NAMES = {"aes-256-gcm": 1, "chacha20-poly1305": 2, "aes-256-gcm-siv": 3}
KEY_ID_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:/@+")
TAG = 16


class Refused(Exception):
    pass


def parse_header(b):
    """Returns (fields, header_length)."""
    def take(pos, n):
        if pos + n > len(b):
            raise Refused("truncated")
        return b[pos:pos + n], pos + n

    magic, p = take(0, 4)
    if magic != b"fken":
        raise Refused("not an envelope")
    (version,), p = take(p, 1)
    if version != 1:
        raise Refused("unsupported version %d" % version)
    (mode,), p = take(p, 1)
    (alg,), p = take(p, 1)
    if alg not in AEADS:
        raise Refused("unknown algorithm")
    (n,), p = take(p, 1)
    if not 1 <= n <= 64:
        raise Refused("bad key id")
    key_id, p = take(p, n)
    if not set(key_id) <= KEY_ID_CHARS:
        raise Refused("bad key id")
    kv, p = take(p, 4)
    h = {"mode": mode, "alg": alg, "key_id": key_id.decode(), "key_version": struct.unpack(">I", kv)[0]}
    if mode == 1:
        h["nonce"], p = take(p, 12)
    elif mode in (2, 4):
        (s,), p = take(p, 1)
        if not 10 <= s <= 20:
            raise Refused("bad segment size")
        h["s"] = s
        h["salt"], p = take(p, 32)
        if mode == 4:
            n, p = take(p, 2)
            n = struct.unpack(">H", n)[0]
            if not 1 <= n <= 1024:
                raise Refused("bad wrapped key length")
            h["wrapped"], p = take(p, n)
    else:
        raise Refused("mode %d not supported by this opener" % mode)
    return h, p


def open_envelope(key, env, aad=b""):
    h, hlen = parse_header(env)
    header, body = env[:hlen], env[hlen:]
    if h["mode"] == 1:
        if len(body) < TAG:
            raise Refused("truncated")
        try:
            return AEADS[h["alg"]](key).decrypt(h["nonce"], body, header + aad)
        except InvalidTag:
            raise Refused("cannot open")
    # Modes 2 and 4: STREAM (mode 4's key is the unwrapped data key).
    k = HKDF(algorithm=hashes.SHA256(), length=32, salt=h["salt"], info=b"fleetkey fk1 stream key").derive(key)
    d = hashlib.sha256(header + aad).digest()
    aead = AEADS[h["alg"]](k)
    seg = (1 << h["s"]) + TAG
    out = []
    pos, i = 0, 0
    while True:
        chunk = body[pos:pos + seg]
        pos += len(chunk)
        last = pos == len(body)
        if len(chunk) < TAG or (last and len(chunk) == TAG and i > 0):
            raise Refused("truncated or malformed")
        nonce = i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        try:
            out.append(aead.decrypt(nonce, chunk, d))
        except InvalidTag:
            raise Refused("cannot open segment %d" % i)
        if last:
            return b"".join(out)
        i += 1


def check_vectors(path):
    doc = json.load(open(path))
    passed = failed = skipped = 0
    for v in doc["vectors"]:
        if v["mode"] == "recipient":
            skipped += 1
            continue
        key = bytes.fromhex(v["key"])
        env = bytes.fromhex(v["envelope"])
        aad = bytes.fromhex(v["aad"])
        want = bytes.fromhex(v["plaintext"])
        checks = []
        checks.append(("opens", lambda: open_envelope(key, env, aad) == want))
        if "armor" in v:
            a = v["armor"]
            checks.append(("armor", lambda: a.startswith("fk1:") and base64.urlsafe_b64decode(a[4:] + "=" * (-len(a[4:]) % 4)) == env))
        # Every single-byte change anywhere must be refused.
        def all_flips_refused():
            for i in range(len(env)):
                bad = bytearray(env)
                bad[i] ^= 0x01
                try:
                    open_envelope(key, bytes(bad), aad)
                    return False
                except Refused:
                    pass
            return True
        checks.append(("every flip refused", all_flips_refused))
        def wrong_aad_refused():
            try:
                open_envelope(key, env, aad + b"x")
                return False
            except Refused:
                return True
        checks.append(("wrong aad refused", wrong_aad_refused))
        if v["mode"] == "wrapped":
            wk = bytes.fromhex(v["wrapping_key"])
            wrapped = bytes.fromhex(v["wrapped"])
            checks.append(("header carries the wrapped key", lambda: parse_header(env)[0]["wrapped"] == wrapped))
            checks.append(("wrapped key opens to the data key", lambda: open_envelope(wk, wrapped, aad) == key))
        for name, check in checks:
            try:
                ok = check()
            except Refused as e:
                ok = False
                name += " (%s)" % e
            if ok:
                passed += 1
            else:
                failed += 1
                print("FAIL %s: %s" % (v["name"], name))
    print("python fk1 interop: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return failed == 0 and passed > 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "vectors":
        return 0 if check_vectors(argv[2]) else 1
    if len(argv) >= 4 and argv[1] == "open":
        kf = json.load(open(argv[2]))
        assert kf["fleetkey"] == "symmetric-key" and kf["version"] == 1
        key = base64.urlsafe_b64decode(kf["key"] + "=" * (-len(kf["key"]) % 4))
        aad = argv[argv.index("--aad") + 1].encode() if "--aad" in argv else b""
        pairs = [tuple(argv[i + 1].split("=", 1)) for i, a in enumerate(argv) if a == "--context"]
        if pairs:
            from fk1_context import encode_context
            aad = encode_context(pairs)
        env = open(argv[3], "rb").read()
        h, _ = parse_header(env)
        if h["key_id"] != kf["key_id"] or h["alg"] != NAMES[kf["algorithm"]]:
            print("wrong key", file=sys.stderr)
            return 1
        try:
            sys.stdout.buffer.write(open_envelope(key, env, aad))
        except Refused as e:
            print("refused: %s" % e, file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
