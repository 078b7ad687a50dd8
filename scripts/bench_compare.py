#!/usr/bin/env python3
"""Before/after comparison of two checkouts on the same machine, alternated A B A B.

Usage: scripts/bench_compare.py BASE_CHECKOUT HEAD_CHECKOUT [ROUNDS]

Each checkout must have been built first (in its own directory):
    cargo build --release -p fleetkey
    cargo bench -p fleetkey-server --bench keyring --bench fleet --no-run

Measures, per round and checkout:
  - keyring seal 1 KiB AES-256-GCM (criterion `keyring-seal/aes-256-gcm/keyring/1024`, median ns)
  - factory registrations per second (criterion `factory`, first line, median elem/s)
  - HTTP seal 64 B: `fleetkey serve` (release, embedded store) under oha, 64 connections
Prints every measurement and the medians, with the ratio head/base.
"""

import base64
import glob
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def bench_exe(checkout, name):
    found = sorted(
        (p for p in glob.glob(f"{checkout}/target/release/deps/{name}-*") if os.access(p, os.X_OK) and not p.endswith(".d")),
        key=os.path.getmtime,
    )
    if not found:
        sys.exit(f"{checkout}: no {name} bench executable; build it first")
    return found[-1]


def criterion(exe, flt, field):
    out = subprocess.run(
        [exe, "--bench", "--noplot", flt], capture_output=True, text=True, check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(exe))),
    ).stdout
    # "time:   [a unit b unit c unit]" / "thrpt:  [a unit b unit c unit]": the middle value.
    m = re.search(field + r":\s+\[\S+ \S+ (\S+) (\S+)", out)
    if not m:
        sys.exit(f"no {field} in output of {exe} {flt}:\n{out}")
    value, unit = float(m.group(1)), m.group(2)
    scale = {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6}
    return value * scale[unit]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_seal(checkout, secs):
    fk = f"{checkout}/target/release/fleetkey"
    d = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, HOME=f"{d}/home", FLEETKEY_LISTEN=f"127.0.0.1:{port}",
               FLEETKEY_DEVICE_LISTEN="off", FLEETKEY_DEVICE_UDP_LISTEN="off", FLEETKEY_GRPC_LISTEN="off",
               FLEETKEY_LOG_FORMAT="json", FLEETKEY_RATE_LIMIT_PER_TOKEN="100000000",
               FLEETKEY_RATE_LIMIT_GLOBAL="100000000")
    for k in ("FLEETKEY_ADDR", "FLEETKEY_TOKEN", "FLEETKEY_STORE_URL", "FLEETKEY_REDIS_URL"):
        env.pop(k, None)
    srv = subprocess.Popen([fk, "serve"], cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        token = open(f"{d}/fleetkey-data/admin.token").read().strip()
        req = urllib.request.Request(
            f"{url}/v1/keyrings", method="POST",
            data=json.dumps({"name": "bench", "policy": {"max_uses": 1 << 40}}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5)
        body = json.dumps({"plaintext": base64.b64encode(bytes(64)).decode()})
        out = subprocess.run(
            ["oha", "-z", f"{secs}s", "-c", "64", "--no-tui", "--output-format", "json", "-m", "POST",
             "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
             "-d", body, f"{url}/v1/keyrings/bench/seal"],
            capture_output=True, text=True, check=True).stdout
        s = json.loads(out)
        codes = s.get("statusCodeDistribution", {})
        if set(codes) != {"200"}:
            sys.exit(f"{checkout}: seal answered {codes}")
        return s["summary"]["requestsPerSec"]
    finally:
        srv.terminate()
        srv.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def main():
    base, head = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    shutil.which("oha") or sys.exit("oha not found: cargo install --locked oha")
    results = {c: {"keyring seal ns": [], "registrations/s": [], "HTTP seals/s": []} for c in (base, head)}
    for r in range(rounds):
        for c in (base, head):
            k = criterion(bench_exe(c, "keyring"), "keyring-seal/aes-256-gcm/keyring/1024", "time")
            f = criterion(bench_exe(c, "fleet"), "factory", "thrpt")
            h = http_seal(c, 10)
            for key, v in (("keyring seal ns", k), ("registrations/s", f), ("HTTP seals/s", h)):
                results[c][key].append(v)
            print(f"round {r + 1} {c}: keyring seal {k:.1f} ns, registrations {f:.0f}/s, HTTP seal {h:.0f}/s", flush=True)
    print("\nmedians (head/base):")
    for key in results[base]:
        b, h = statistics.median(results[base][key]), statistics.median(results[head][key])
        print(f"  {key}: base {b:.1f}, head {h:.1f}, ratio {h / b:.3f}")


if __name__ == "__main__":
    main()
