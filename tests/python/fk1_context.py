#!/usr/bin/env python3
"""An independent encoder of fk1 encryption contexts, written from docs/formats.md
("Encryption context") alone, with the Python standard library.

Usage:
  fk1_context.py vectors docs/vectors/context.json   # checks every vector
  fk1_context.py encode KEY=VALUE ...                # prints the AAD as hex
"""

import json
import struct
import sys

PREFIX = b"fk1-context"
MAX_PAIRS, MAX_KEY, MAX_VALUE = 64, 128, 1024  # characters (code points)


class Refused(Exception):
    pass


def encode_context(pairs):
    """pairs: a list of (key, value) str tuples in any order; returns the AAD bytes."""
    if not pairs:
        return b""
    if len(pairs) > MAX_PAIRS:
        raise Refused("more than 64 pairs")
    seen = {}
    for k, v in pairs:
        if not 1 <= len(k) <= MAX_KEY:
            raise Refused("key length")
        if len(v) > MAX_VALUE:
            raise Refused("value length")
        kb, vb = k.encode("utf-8"), v.encode("utf-8")
        if kb in seen:
            raise Refused("duplicate key")
        seen[kb] = vb
    out = PREFIX + struct.pack(">H", len(seen))
    for kb in sorted(seen):  # bytes compare as unsigned bytes, shorter first on a tie
        out += struct.pack(">H", len(kb)) + kb + struct.pack(">H", len(seen[kb])) + seen[kb]
    return out


def check_vectors(path):
    doc = json.load(open(path))
    passed = failed = 0
    for v in doc["valid"]:
        got = encode_context([tuple(p) for p in v["pairs"]]).hex()
        if got == v["encoded"]:
            passed += 1
        else:
            failed += 1
            print("FAIL %s: got %s" % (v["name"], got))
    for v in doc["refused"]:
        try:
            encode_context([tuple(p) for p in v["pairs"]])
            failed += 1
            print("FAIL %s: not refused" % v["name"])
        except Refused:
            passed += 1
    print("python context vectors: %d passed, %d failed" % (passed, failed))
    return failed == 0 and passed > 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "vectors":
        return 0 if check_vectors(argv[2]) else 1
    if len(argv) >= 2 and argv[1] == "encode":
        print(encode_context([tuple(a.split("=", 1)) for a in argv[2:]]).hex())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
