"""The native fk1 module and the SDK's local parts, without a server: golden
vectors, every refusal, the error table against docs/errors.md, and the generated
operations against the OpenAPI document."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

import fleetkey
from fleetkey import envelope as fk1
from fleetkey import _core, _native
from fleetkey.errors import CannotOpenError, ERROR_CODES, FleetKeyError, error_for

ROOT = pathlib.Path(__file__).resolve().parents[3]
VECTORS = {v["name"]: v for v in json.loads((ROOT / "docs/vectors/fk1.json").read_text())["vectors"]}
h = bytes.fromhex


def test_wrapped_vector_opens_with_its_data_key() -> None:
    v = VECTORS["wrapped-chacha20-poly1305"]
    env = h(v["envelope"])
    header = fk1.parse_header(env)
    assert (header.mode, header.algorithm, header.key_id, header.key_version) == ("wrapped", "chacha20-poly1305", "vault", 2)
    assert header.wrapped == h(v["wrapped"])
    assert _native.open_wrapped(env, h(v["key"]), h(v["aad"])) == h(v["plaintext"])
    # The wrapped key is the vault keyring's mode-1 envelope of the data key.
    inner = fk1.parse_header(header.wrapped)
    assert (inner.mode, inner.key_id, inner.key_version) == ("single", "vault", 2)


def test_wrapped_refusals() -> None:
    v = VECTORS["wrapped-chacha20-poly1305"]
    env, key, aad = h(v["envelope"]), h(v["key"]), h(v["aad"])
    with pytest.raises(fk1.EnvelopeError, match="cannot open"):
        _native.open_wrapped(env, key, b"file=other.pdf")
    with pytest.raises(fk1.EnvelopeError, match="cannot open"):
        _native.open_wrapped(env, bytes(32), aad)
    tampered = bytearray(env)
    tampered[-1] ^= 1
    with pytest.raises(fk1.EnvelopeError, match="cannot open"):
        _native.open_wrapped(bytes(tampered), key, aad)
    with pytest.raises(fk1.EnvelopeError, match="cannot open"):
        _native.open_wrapped(env[: len(env) - 20], key, aad)  # cut inside a segment
    first = fk1.parse_header(env).length + 2**10 + 16  # cut after the first segment
    with pytest.raises(fk1.EnvelopeError, match="truncated"):
        _native.open_wrapped(env[:first], key, aad)
    with pytest.raises(fk1.EnvelopeError, match="cannot open|after the final segment"):
        _native.open_wrapped(env + bytes(20), key, aad)
    with pytest.raises(ValueError, match="32 bytes"):
        _native.open_wrapped(env, key[:16], aad)
    single = h(VECTORS["single-aes-256-gcm-aad"]["envelope"])
    with pytest.raises(fk1.EnvelopeError, match="not one sealed under a data key"):
        _native.open_wrapped(single, key, aad)


def test_seal_wrapped_round_trip_and_header() -> None:
    v = VECTORS["wrapped-chacha20-poly1305"]
    key, wrapped = h(v["key"]), h(v["wrapped"])
    data = bytes(range(256)) * 1000
    for alg in fk1.ALGORITHMS:
        env = _native.seal_wrapped(key, wrapped, data, b"ctx", alg, 10)
        header = fk1.parse_header(env)
        assert (header.mode, header.algorithm, header.key_id, header.key_version) == ("wrapped", alg, "vault", 2)
        assert _native.open_wrapped(env, key, b"ctx") == data
    with pytest.raises(ValueError, match="unknown algorithm"):
        _native.seal_wrapped(key, wrapped, b"x", b"", "des")
    with pytest.raises(ValueError, match="segment_log2"):
        _native.seal_wrapped(key, wrapped, b"x", b"", "aes-256-gcm", 9)
    with pytest.raises(ValueError, match="wrapped is not"):
        _native.seal_wrapped(key, b"not an envelope", b"x", b"")


def test_files_seal_and_open_in_constant_memory(tmp_path: pathlib.Path) -> None:
    v = VECTORS["wrapped-chacha20-poly1305"]
    key, wrapped = h(v["key"]), h(v["wrapped"])
    src, sealed, back = tmp_path / "in.bin", tmp_path / "in.fk", tmp_path / "back.bin"
    src.write_bytes(bytes(range(251)) * 12_000)
    assert _native.seal_wrapped_file(key, wrapped, str(src), str(sealed), b"a") == src.stat().st_size
    assert _native.read_header_file(str(sealed)).wrapped == wrapped
    assert _native.open_wrapped_file(str(sealed), str(back), key, b"a") == src.stat().st_size
    assert back.read_bytes() == src.read_bytes()
    # A tampered file does not open, and leaves no output behind.
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 1
    sealed.write_bytes(bytes(data))
    out = tmp_path / "never.bin"
    with pytest.raises(fk1.EnvelopeError):
        _native.open_wrapped_file(str(sealed), str(out), key, b"a")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "in.bin", "in.fk"]
    with pytest.raises(OSError):
        _native.seal_wrapped_file(key, wrapped, str(tmp_path / "missing"), str(out), b"")


def test_recipient_vector_opens_with_its_identity() -> None:
    v = VECTORS["recipient-xwing-aes-256-gcm"]
    identity = fk1.identity_from_secret(h(v["identity_seed"]))
    env = h(v["envelope"])
    assert fk1.parse_header(env).key_id == json.loads(identity)["key_id"]
    assert fk1.open_with(identity, env, aad=h(v["aad"])) == h(v["plaintext"])


def test_seal_to_recipient_and_refusals() -> None:
    me, other = fk1.generate_identity(), fk1.generate_identity()
    recipient = fk1.recipient_of(me)
    assert recipient.startswith("fk1r:")
    context = {"tenant": "acme", "file": "a.pdf"}
    env = fk1.seal_to(recipient, b"x" * 200_000, context=context)
    assert fk1.open_with(me, env, context=context) == b"x" * 200_000
    assert fk1.open_with(me, env, aad=fk1.encode_context(context)) == b"x" * 200_000
    with pytest.raises(fk1.EnvelopeError, match="cannot open"):
        fk1.open_with(me, env, context={"tenant": "other", "file": "a.pdf"})
    with pytest.raises(fk1.EnvelopeError, match="wrong identity"):
        fk1.open_with(other, env, context=context)
    with pytest.raises(ValueError, match="identity"):
        fk1.open_with("{}", env)
    with pytest.raises(ValueError):
        fk1.seal_to("fk1r:AAAA", b"x")
    with pytest.raises(ValueError, match="not both"):
        fk1.seal_to(recipient, b"x", aad=b"a", context=context)
    # The identity's secret never shows in an error.
    secret = json.loads(me)["secret_key"]
    broken = me.replace(json.loads(me)["recipient"], fk1.recipient_of(other))
    with pytest.raises(ValueError) as e:
        fk1.open_with(broken, env)
    assert secret not in str(e.value)


def test_header_refusals() -> None:
    good = h(VECTORS["single-aes-256-gcm-aad"]["envelope"])
    assert fk1.parse_header(good).mode == "single"
    for bad, msg in [
        (b"nope" + good[4:], "not a fleetkey envelope"),
        (good[:4] + b"\x02" + good[5:], "version"),
        (good[:5] + b"\x09" + good[6:], "mode"),
        (good[:6] + b"\x07" + good[7:], "algorithm"),
        (good[:7] + b"\x00" + good[8:], "key id"),
        (good[:10], "truncated"),
        (b"", "not a fleetkey envelope"),
    ]:
        with pytest.raises(fk1.EnvelopeError, match=msg):
            fk1.parse_header(bad)


def test_armor_is_strict() -> None:
    v = VECTORS["single-aes-256-gcm-no-aad"]
    assert fk1.armor(h(v["envelope"])) == v["armor"]
    assert fk1.unarmor(v["armor"]) == h(v["envelope"])
    assert fk1.unarmor(v["armor"] + "\n") == h(v["envelope"])
    for bad in (v["armor"] + "=", v["armor"] + " ", v["armor"][4:], v["armor"] + "\n\n"):
        with pytest.raises(fk1.EnvelopeError):
            fk1.unarmor(bad)


def test_context_vectors() -> None:
    doc = json.loads((ROOT / "docs/vectors/context.json").read_text())
    for case in doc["valid"]:
        assert fk1.encode_context(dict(case["pairs"])).hex() == case["encoded"], case["name"]
    refused = 0
    for case in doc.get("refused", []):
        pairs = case["pairs"]
        if len({k for k, _ in pairs}) != len(pairs):
            continue  # a dict cannot hold a repeated key: nothing to refuse here
        with pytest.raises(ValueError):
            fk1.encode_context(dict(pairs))
        refused += 1
    assert refused > 0


def test_ed25519_wycheproof() -> None:
    doc = json.loads((ROOT / "crates/fleetkey-crypto/tests/vectors/ed25519_test.json").read_text())
    checked = 0
    for g in doc["testGroups"]:
        pk = g["publicKey"]["pk"] if isinstance(g["publicKey"], dict) else g["publicKey"]
        for t in g["tests"]:
            ok = fk1.verify_signature("ed25519", h(pk), h(t["msg"]), h(t["sig"]))
            if t["result"] != "acceptable":
                assert ok == (t["result"] == "valid"), t["tcId"]
            checked += 1
    assert checked > 100
    with pytest.raises(ValueError, match="no offline verification"):
        fk1.verify_signature("rsa", b"", b"", b"")


def test_error_table_matches_docs() -> None:
    text = (ROOT / "docs/errors.md").read_text()
    advice = {"no": "never", "after a change": "after_change", "yes, with backoff": "backoff"}
    documented = {
        code: advice[retry]
        for code, retry in re.findall(r"^\| `([a-z_]+)` \| \d+ \| `[A-Z_]+` \| ([a-z, ]+) \|", text, re.M)
    }
    assert documented == ERROR_CODES
    e = error_for("cannot_open", 422, "does not open")
    assert isinstance(e, CannotOpenError) and isinstance(e, FleetKeyError)
    assert (e.code, e.status, e.retry) == ("cannot_open", 422, "never")
    new = error_for("added_later", 503, "x")
    assert type(new) is FleetKeyError and new.code == "unknown" and new.raw_code == "added_later"
    assert new.retry == "backoff" and error_for("added_later", 418, "x").retry == "never"


def test_operations_are_generated_from_the_served_document() -> None:
    gen = ROOT / "sdk/python/gen_operations.py"
    subprocess.run([sys.executable, str(gen), "--check"], check=True)
    doc = json.loads((ROOT / "sdk/typescript/openapi.json").read_text())
    ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values() if isinstance(op, dict)}
    assert set(fleetkey.OPERATIONS) == ids
    for op in ids:
        assert callable(getattr(fleetkey.Api, op + "_" if op == "import" else op))


def test_the_asyncio_client_is_generated_from_the_sync_one() -> None:
    subprocess.run([sys.executable, str(ROOT / "sdk/python/gen_aio.py"), "--check"], check=True)
    sync = {n for n in dir(fleetkey.FleetKey) if not n.startswith("_")}
    both = {n for n in dir(fleetkey.AsyncFleetKey) if not n.startswith("_")}
    assert sync - {"close"} == both - {"aclose"}


def test_requests_are_built_safely() -> None:
    r = _core.request("http://h", "show_device", {"fleet": "a/b", "id": "../x"}, {"x": None})
    assert (r.method, r.url, r.body) == ("GET", "http://h/v1/fleets/a%2Fb/devices/..%2Fx", None)
    r = _core.request("http://h", "list_devices", {"fleet": "f"}, {"state": "active", "limit": 5, "after": None})
    assert r.url == "http://h/v1/fleets/f/devices?state=active&limit=5"
    with pytest.raises(ValueError, match="missing path parameter"):
        _core.request("http://h", "show_device", {"fleet": "f"})
    for bad in ("", ".", ".."):
        with pytest.raises(ValueError, match="must not be"):
            _core.request("http://h", "seal", {"name": bad})
    with pytest.raises(ValueError, match="unknown operation"):
        _core.request("http://h", "drop_tables")


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETKEY_ADDR", raising=False)
    fk = fleetkey.FleetKey("http://127.0.0.1:1", "fk_tok_secret")
    assert "fk_tok_secret" not in repr(fk) and "fk_tok_secret" not in repr(fk._settings)
    dk = fleetkey.DataKey(b"\x01" * 32, b"ct", 1)
    assert "\\x01" not in repr(dk) and "plaintext" not in repr(dk)
    with pytest.raises(ValueError, match="FLEETKEY_ADDR"):
        fleetkey.FleetKey(None)
