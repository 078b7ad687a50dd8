"""The retry rule of docs/errors.md, against a real HTTP server on loopback that
answers as told: only "yes, with backoff" errors are sent again (honouring
Retry-After), at most `attempts` times; a request that got no answer is sent again
only when it is a read."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
from typing import Iterator

import pytest

import fleetkey
from fleetkey.errors import ConflictError, RateLimitedError, UnavailableError, UnreachableError


class Script(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, dict[str, str], bytes]] = []
    seen: list[tuple[str, str]] = []

    def _answer(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        Script.seen.append((self.command, self.path))
        status, headers, body = Script.answers.pop(0) if Script.answers else (200, {}, b"{}")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def error(status: int, code: str, retry_after: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"content-type": "application/json"}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    return status, headers, json.dumps({"error": {"code": code, "message": f"{code} here"}}).encode()


@pytest.fixture
def scripted() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Script)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    Script.answers, Script.seen = [], []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def ok_list() -> tuple[int, dict[str, str], bytes]:
    return 200, {"content-type": "application/json"}, b'{"keyrings": []}'


def test_backoff_errors_are_retried_then_succeed(scripted: str) -> None:
    Script.answers = [error(503, "unavailable", "0"), error(429, "rate_limited", "0"), ok_list()]
    with fleetkey.FleetKey(scripted, "t", attempts=3) as fk:
        assert fk.api.list_keyrings() == {"keyrings": []}
    assert len(Script.seen) == 3


def test_backoff_errors_stop_after_attempts(scripted: str) -> None:
    Script.answers = [error(503, "unavailable", "0")] * 5
    with fleetkey.FleetKey(scripted, "t", attempts=2) as fk, pytest.raises(UnavailableError) as e:
        fk.api.list_keyrings()
    assert len(Script.seen) == 2 and e.value.retry_after == 0 and e.value.retry == "backoff"


def test_other_errors_are_never_retried(scripted: str) -> None:
    Script.answers = [error(409, "conflict"), ok_list()]
    with fleetkey.FleetKey(scripted, "t") as fk, pytest.raises(ConflictError):
        fk.api.create_keyring(body={"name": "x"})
    assert len(Script.seen) == 1


def test_a_body_that_is_not_the_error_object_still_raises(scripted: str) -> None:
    Script.answers = [(502, {}, b"<html>bad gateway</html>")] * 3
    with fleetkey.FleetKey(scripted, "t", attempts=3) as fk, pytest.raises(fleetkey.FleetKeyError) as e:
        fk.api.list_keyrings()
    assert (e.value.code, e.value.status, e.value.retry) == ("unknown", 502, "backoff")


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_nothing_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    addr = closed_port()
    sends: list[str] = []
    fk = fleetkey.FleetKey(addr, "fk_tok_never_shown", attempts=3)
    original = fk._http.request

    def counting(method: str, url: str, **kw: object):  # type: ignore[no-untyped-def]
        sends.append(method)
        return original(method, url, **kw)

    monkeypatch.setattr(fk._http, "request", counting)
    with pytest.raises(UnreachableError) as e:
        fk.api.list_keyrings()
    assert sends == ["GET"] * 3 and "fk_tok_never_shown" not in str(e.value)
    sends.clear()
    with pytest.raises(UnreachableError):
        fk.seal("app", b"x")
    assert sends == ["POST"]  # a write may have landed: never sent twice


async def test_async_client_follows_the_same_rule(scripted: str) -> None:
    Script.answers = [error(429, "rate_limited", "0"), error(429, "rate_limited", "0"), error(429, "rate_limited", "0")]
    async with fleetkey.AsyncFleetKey(scripted, "t", attempts=3) as fk:
        with pytest.raises(RateLimitedError):
            await fk.api.list_keyrings()
    assert len(Script.seen) == 3
    await asyncio.sleep(0)
