#!/usr/bin/env python3
"""Per-operation cost of the store: the same sequential writes through the HTTP API
of a release `fleetkey serve` on the embedded SQLite store and on PostgreSQL.

Usage: scripts/bench_store.py [--n 300] [--postgres postgres://postgres@127.0.0.1:5432/test]

Each operation is one request on a kept-alive connection, one at a time (no
concurrency), so the time is the request's path plus the store transaction with
its audit entry. SQLite in the same run is the baseline. Reports medians and p99.
"""
import argparse, base64, http.client, json, os, secrets, shutil, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FK = os.path.join(ROOT, "target", "release", "fleetkey")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(dirpath, env_extra):
    port = free_port()
    env = dict(os.environ, HOME=os.path.join(dirpath, "home"), FLEETKEY_DATA_DIR=os.path.join(dirpath, "data"),
               FLEETKEY_PASSPHRASE="bench", FLEETKEY_LISTEN=f"127.0.0.1:{port}", FLEETKEY_DEVICE_LISTEN="off",
               FLEETKEY_DEVICE_UDP_LISTEN="off", FLEETKEY_GRPC_LISTEN="off", FLEETKEY_LOG_FORMAT="json", RUST_LOG="warn",
               FLEETKEY_RATE_LIMIT_PER_TOKEN="100000000", FLEETKEY_RATE_LIMIT_GLOBAL="100000000")
    env.pop("FLEETKEY_ROOT_KEY_FILE", None)
    env.update(env_extra)
    log = open(os.path.join(dirpath, "serve.log"), "w")
    proc = subprocess.Popen([FK, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    token = open(os.path.join(dirpath, "data", "admin.token")).read().strip()
    return proc, port, token


def timed(conn, token, method, path, body):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    t = time.perf_counter()
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    r.read()
    dt = time.perf_counter() - t
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status}")
    return dt


def run(label, env_extra, n):
    d = tempfile.mkdtemp(prefix="fk-bench-store-")
    proc, port, token = start(d, env_extra)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        timed(c, token, "POST", "/v1/keyrings", {"name": "bench"})
        timed(c, token, "POST", "/v1/fleets", {"name": "bench"})
        ops = {
            "keyring rotation": lambda i: ("POST", "/v1/keyrings/bench/rotate", None),
            "token creation": lambda i: ("POST", "/v1/tokens", {"name": f"t{i}", "scopes": ["keys:manage"]}),
            "factory registration": lambda i: ("POST", "/v1/factory/devices", {
                "fleet": "bench", "hardware_id": f"hw-{i}-{secrets.token_hex(4)}", "model": "m", "batch": "b", "station": "s",
                "keys": {"x25519": base64.b64encode(secrets.token_bytes(32)).decode(),
                         "ed25519": base64.b64encode(secrets.token_bytes(32)).decode()}}),
            "seal 64 B (no store write)": lambda i: ("POST", "/v1/keyrings/bench/seal",
                                                     {"plaintext": base64.b64encode(bytes(64)).decode()}),
        }
        out = {}
        for name, f in ops.items():
            for i in range(20):  # warm-up
                timed(c, token, *f(100000 + i))
            ts = sorted(timed(c, token, *f(i)) for i in range(n))
            out[name] = (statistics.median(ts), ts[int(0.99 * (len(ts) - 1))])
        return out
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--postgres", default=os.environ.get("FLEETKEY_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    a = ap.parse_args()
    schema = "fkbench_" + secrets.token_hex(6)
    sqlite = run("sqlite", {}, a.n)
    pg = run("postgres", {"FLEETKEY_STORE_URL": a.postgres, "FLEETKEY_STORE_SCHEMA": schema}, a.n)
    print(f"{'operation':<28} {'SQLite p50':>11} {'p99':>9} {'PostgreSQL p50':>15} {'p99':>9} {'ratio p50':>10}")
    for name in sqlite:
        s50, s99 = sqlite[name]
        p50, p99 = pg[name]
        print(f"{name:<28} {s50*1000:>9.2f}ms {s99*1000:>7.2f}ms {p50*1000:>13.2f}ms {p99*1000:>7.2f}ms {p50/s50:>9.2f}x")


if __name__ == "__main__":
    main()
