#!/usr/bin/env python3
"""An independent constrained device, written only from docs/protocol.md ("The
constrained-device profile" and "Downlink: commands and acknowledgements"), with
the `cryptography` package's X25519, HKDF-SHA256 and AES-CCM.

  device_frames.py vectors docs/vectors/device_frames.json
      reproduces the golden frames byte for byte (both modes).

  device_frames.py run HOST:PORT DEVICE_ID SCALAR SERVER_PUBLIC PSK SECONDS
      boots, sends its session start and then a telemetry frame every 0.3 s over
      UDP; opens the server's control frames, carries out each command (config:
      applied; rekey: a new boot; wipe: acknowledged, then the keys erased) and
      acknowledges it. Prints one JSON line per event; exits after the wipe, or
      fails after SECONDS without one.
"""

import json
import os
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
SESSION_START, DATA, CONTROL = 1, 2, 3
X25519_PSK, STATIC_KEY = 1, 2
UP, DOWN = 1, 2
MAX_FRAME = 1200
OPS = {1: "wipe", 2: "config", 3: "rekey"}


def derive(mode, ikm, salt, device_id, boot):
    info = b"fleetkey-device v1" + bytes([mode]) + device_id + struct.pack(">I", boot)
    okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)
    return okm[:16], okm[16:]


def x25519_ikm(scalar, server_public, psk):
    shared = X25519PrivateKey.from_private_bytes(scalar).exchange(
        X25519PublicKey.from_public_bytes(server_public)
    )
    if shared == bytes(32):
        raise ValueError("low-order key")
    return shared + psk


def header(kind, mode, device_id, boot, counter, salt=b""):
    return bytes([VERSION, kind, mode]) + device_id + struct.pack(">II", boot, counter) + salt


def nonce(direction, boot, counter):
    return bytes([direction]) + struct.pack(">II", boot, counter) + bytes(4)


def seal(key, direction, head, payload, boot, counter):
    frame = head + AESCCM(key, tag_length=8).encrypt(nonce(direction, boot, counter), payload, head)
    assert len(frame) <= MAX_FRAME
    return frame


def check_vectors(path):
    v = json.load(open(path))
    x = v["x25519_psk"]
    did = bytes.fromhex(x["device_id"])
    ikm = x25519_ikm(
        bytes.fromhex(x["device_scalar"]), bytes.fromhex(x["server_public"]), bytes.fromhex(x["psk"])
    )
    salt = bytes.fromhex(x["salt"])
    up, _ = derive(X25519_PSK, ikm, salt, did, x["boot"])
    start = seal(up, UP, header(SESSION_START, X25519_PSK, did, x["boot"], 0, salt), b"", x["boot"], 0)
    assert start.hex() == x["session_start"], "x25519 session start differs"
    data = seal(up, UP, header(DATA, X25519_PSK, did, x["boot"], 1), x["data_payload"].encode(), x["boot"], 1)
    assert data.hex() == x["data_frame_counter_1"], "x25519 data frame differs"
    s = v["static_key"]
    did = bytes.fromhex(s["device_id"])
    salt = bytes.fromhex(s["salt"])
    up, _ = derive(STATIC_KEY, bytes.fromhex(s["factory_key"]), salt, did, s["boot"])
    start = seal(
        up, UP, header(SESSION_START, STATIC_KEY, did, s["boot"], 0, salt),
        s["session_start_payload"].encode(), s["boot"], 0,
    )
    assert start.hex() == s["session_start"], "static-key session start differs"
    print("device frames: golden vectors reproduced (x25519+psk, static key)")


class PyDevice:
    def __init__(self, addr, device_id, scalar, server_public, psk):
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.id = device_id
        self.scalar, self.server_public, self.psk = scalar, server_public, psk
        self.boot = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.1)
        self.done = set()

    def event(self, **e):
        print(json.dumps(e), flush=True)

    def start(self):
        self.boot += 1  # persisted before anything else on a real device
        self.salt = os.urandom(16)
        ikm = x25519_ikm(self.scalar, self.server_public, self.psk)
        self.up, self.down = derive(X25519_PSK, ikm, self.salt, self.id, self.boot)
        self.counter, self.last_down = 0, 0
        h = header(SESSION_START, X25519_PSK, self.id, self.boot, 0, self.salt)
        self.sock.sendto(seal(self.up, UP, h, b"", self.boot, 0), self.addr)
        self.event(event="boot", boot=self.boot)

    def send(self, kind, payload):
        self.counter += 1
        h = header(kind, X25519_PSK, self.id, self.boot, self.counter)
        self.sock.sendto(seal(self.up, UP, h, payload, self.boot, self.counter), self.addr)

    def open_down(self, frame):
        """The payload of a control frame for this boot, or None (refused)."""
        if len(frame) < 19 + 8 or len(frame) > MAX_FRAME or frame[0] != VERSION:
            return None
        kind, mode, did = frame[1], frame[2], frame[3:11]
        boot, counter = struct.unpack(">II", frame[11:19])
        if kind != CONTROL or mode != X25519_PSK or did != self.id or boot != self.boot:
            return None
        if counter <= self.last_down:
            self.event(event="refused", why="replay", counter=counter)
            return None
        head = frame[:19]
        try:
            body = AESCCM(self.down, tag_length=8).decrypt(nonce(DOWN, boot, counter), frame[19:], head)
        except Exception:
            self.event(event="refused", why="forged")
            return None
        self.last_down = counter
        return body

    def handle(self, payload):
        if len(payload) < 13 or payload[0] not in OPS:
            self.event(event="refused", why="malformed")
            return False
        op, cid, body = OPS[payload[0]], payload[1:13], payload[13:]
        if op != "config" and body:
            self.event(event="refused", why="malformed")
            return False
        ack = b"\x80" + cid + b"\x01"
        if cid in self.done:
            self.send(CONTROL, ack)
            self.event(event="repeated", op=op)
            return False
        self.done.add(cid)
        if op == "config":
            self.event(event="config", command="cmd_" + cid.hex(), body=json.loads(body))
            self.send(CONTROL, ack)
        elif op == "rekey":
            self.send(CONTROL, ack)
            self.event(event="rekey", command="cmd_" + cid.hex())
            self.start()
        else:
            self.send(CONTROL, ack)
            self.scalar = self.psk = None  # erased: this device never boots again
            self.event(event="wiped", command="cmd_" + cid.hex())
            return True
        return False

    def run(self, seconds):
        self.start()
        end = time.monotonic() + seconds
        next_up = 0.0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_up:
                time.sleep(0.02)
                self.send(DATA, json.dumps({"t": round(now % 100, 1)}).encode())
                next_up = now + 0.3
            try:
                frame, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            payload = self.open_down(frame)
            if payload is not None and self.handle(payload):
                return
        sys.exit("no wipe within %s s" % seconds)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "vectors":
        check_vectors(sys.argv[2])
    elif len(sys.argv) == 8 and sys.argv[1] == "run":
        _, _, addr, did, scalar, server_public, psk, seconds = sys.argv
        PyDevice(
            addr, bytes.fromhex(did), bytes.fromhex(scalar), bytes.fromhex(server_public), bytes.fromhex(psk)
        ).run(float(seconds))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
