"""A real `fleetkey serve` for the SDK's tests (zero-config, in a temporary
directory). The binary: FLEETKEY_BIN, or the workspace's release or debug build;
without one the server tests are skipped (never passed)."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import time

import httpx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _binary() -> str | None:
    for p in (os.environ.get("FLEETKEY_BIN"), ROOT / "target/release/fleetkey", ROOT / "target/debug/fleetkey"):
        if p and pathlib.Path(p).is_file():
            return str(p)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, addr: str, token: str, data: pathlib.Path) -> None:
        self.addr = addr
        self.token = token
        self.data = data


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    binary = _binary()
    if binary is None:
        pytest.skip("no fleetkey binary (set FLEETKEY_BIN or build the workspace)")
    home = tmp_path_factory.mktemp("serve")
    http, dev, udp = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "FLEETKEY_LISTEN": f"127.0.0.1:{http}",
        "FLEETKEY_DEVICE_LISTEN": f"127.0.0.1:{dev}",
        "FLEETKEY_DEVICE_UDP_LISTEN": f"127.0.0.1:{udp}",
        "FLEETKEY_GRPC_LISTEN": "off",
    }
    for k in ("FLEETKEY_ADDR", "FLEETKEY_TOKEN"):
        env.pop(k, None)
    proc = subprocess.Popen([binary, "serve"], cwd=home, env=env, stdout=subprocess.DEVNULL)
    addr = f"http://127.0.0.1:{http}"
    try:
        for _ in range(400):
            try:
                if httpx.get(f"{addr}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"fleetkey serve exited with {proc.returncode}")
            time.sleep(0.05)
        token = (home / "fleetkey-data/admin.token").read_text().strip()
        yield Server(addr, token, home)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
