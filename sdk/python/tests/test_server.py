"""The SDK against a real `fleetkey serve`: every helper, envelope encryption with
data keys sealed in process, offline verification, typed errors, paging, and the
generated operations, sync and asyncio."""

from __future__ import annotations

import hashlib
import pathlib

import pytest

import fleetkey
from fleetkey import envelope as fk1
from fleetkey.errors import (
    CannotOpenError,
    ForbiddenError,
    NotFoundError,
    UnauthenticatedError,
    WrongKeyTypeError,
)


@pytest.fixture(scope="module")
def fk(server):  # type: ignore[no-untyped-def]
    with fleetkey.FleetKey(server.addr, server.token) as client:
        for name, algorithm in [
            ("app", "aes-256-gcm"),
            ("firmware", "ed25519"),
            ("pq", "ml-dsa-65"),
            ("both", "ed25519+ml-dsa-65"),
            ("tags", "hmac-sha256"),
            ("inbox", "x-wing"),
        ]:
            client.api.create_keyring(body={"name": name, "algorithm": algorithm})
        yield client


def test_seal_unseal_rewrap_with_context(fk: fleetkey.FleetKey, server) -> None:  # type: ignore[no-untyped-def]
    context = {"tenant": "acme", "app": "billing"}
    sealed = fk.seal("app", "card ending 4242", context=context)
    assert fk1.parse_header(sealed.ciphertext).key_id == "app"
    assert fk.unseal("app", sealed.ciphertext, context=context) == b"card ending 4242"
    tampered = sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1])
    for ct, ctx in [(sealed.ciphertext, {"tenant": "other", "app": "billing"}), (tampered, context)]:
        with pytest.raises(CannotOpenError) as e:
            fk.unseal("app", ct, context=ctx)
        assert (e.value.status, e.value.retry) == (422, "never")
        assert server.token not in str(e.value) and server.token not in repr(e.value)
    fk.api.rotate_keyring("app")
    again = fk.rewrap("app", sealed.ciphertext, context=context)
    assert again.key_version == sealed.key_version + 1
    assert fk.unseal("app", again.ciphertext, context=context) == b"card ending 4242"


def test_batches_answer_item_by_item(fk: fleetkey.FleetKey) -> None:
    items = fk.seal_batch("app", [b"a", {"data": "b", "aad": b"\x01"}, {"data": "c", "context": {"k": "v"}}])
    assert all(i.ok for i in items)
    opened = fk.unseal_batch("app", [i.unwrap().ciphertext for i in items])
    assert opened[0].unwrap() == b"a"
    assert not opened[1].ok and isinstance(opened[1].error, CannotOpenError)
    with pytest.raises(CannotOpenError):
        opened[1].unwrap()
    ok = fk.unseal_batch("app", [{"data": items[2].unwrap().ciphertext, "context": {"k": "v"}}])
    assert ok[0].unwrap() == b"c"
    rewrapped = fk.rewrap_batch("app", [items[0].unwrap().ciphertext])
    assert rewrapped[0].unwrap().key_version >= 1


def test_envelope_encryption_of_a_file(fk: fleetkey.FleetKey, tmp_path: pathlib.Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(bytes(range(256)) * 12_000)  # 3 MB
    context = {"file": "report.pdf"}
    n = fk.seal_file("app", report, tmp_path / "report.pdf.fk", context=context)
    assert n == report.stat().st_size
    header = fk1.parse_header((tmp_path / "report.pdf.fk").read_bytes()[:2048])
    assert (header.mode, header.key_id) == ("wrapped", "app")
    assert fk.open_file(tmp_path / "report.pdf.fk", tmp_path / "back.pdf", context=context) == n
    assert (tmp_path / "back.pdf").read_bytes() == report.read_bytes()
    # The data key is bound to the context: the keyring refuses to unwrap it.
    with pytest.raises(CannotOpenError):
        fk.open_file(tmp_path / "report.pdf.fk", tmp_path / "never.pdf", context={"file": "other.pdf"})
    assert not (tmp_path / "never.pdf").exists()
    # In memory, and the data key's plaintext never left this process.
    env = fk.seal_local("app", b"in memory", aad=b"row 17", algorithm="chacha20-poly1305")
    assert fk1.parse_header(env).algorithm == "chacha20-poly1305"
    assert fk.open_local(env, aad=b"row 17") == b"in memory"
    with pytest.raises(CannotOpenError):
        fk.open_local(env, aad=b"row 18")
    with pytest.raises(fk1.EnvelopeError, match="not one sealed under a data key"):
        fk.open_local(fk.seal("app", b"x").ciphertext)
    dk = fk.data_key("app", plaintext=False)
    assert dk.plaintext is None and fk1.parse_header(dk.ciphertext).mode == "single"


def test_signing_firmware_and_verifying_offline(fk: fleetkey.FleetKey) -> None:
    image = bytes(i % 251 for i in range(64 * 1024))
    for keyring, length in [("firmware", 64), ("pq", 3309), ("both", 3373)]:
        sig = fk.sign(keyring, image)
        assert len(sig.signature) == length
        assert fk.verify(keyring, image, sig.signature)
        public = fk.public_key(keyring)
        assert public.verify(image, sig.signature)  # offline
        forged = image[:-1] + b"\x00"
        assert not public.verify(forged, sig.signature)
        assert not fk.verify(keyring, forged, sig.signature)
    batch = fk.sign_batch("firmware", [b"one", b"two"])
    public = fk.public_key("firmware")
    assert all(public.verify(m, i.unwrap()) for m, i in zip([b"one", b"two"], batch))
    with pytest.raises(WrongKeyTypeError):
        fk.seal("firmware", b"x")


def test_macs_and_random(fk: fleetkey.FleetKey) -> None:
    tag = fk.mac("tags", "message")
    assert len(tag.signature) == 32
    assert fk.verify_mac("tags", "message", tag.signature)
    assert not fk.verify_mac("tags", "massage", tag.signature)
    assert len(fk.random(48)) == 48


def test_sealing_to_an_x_wing_keyring(fk: fleetkey.FleetKey) -> None:
    recipient = fk.recipient("inbox")
    env = fk1.seal_to(recipient, b"for the service only", context={"to": "inbox"})
    assert fk.unseal("inbox", env, context={"to": "inbox"}) == b"for the service only"


def test_typed_errors_and_scopes(fk: fleetkey.FleetKey, server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError):
        fk.seal("missing", b"x")
    with pytest.raises(UnauthenticatedError):
        fleetkey.FleetKey(server.addr, "").seal("app", b"x")
    with fleetkey.FleetKey(server.addr, "fk_tok_nope") as bad, pytest.raises(UnauthenticatedError) as e:
        bad.seal("app", b"x")
    assert "fk_tok_nope" not in str(e.value)
    made = fk.api.create_token(body={"name": "sealer", "scopes": ["seal:app"]})
    with fleetkey.FleetKey(server.addr, made["token"]) as sealer:
        assert sealer.seal("app", b"ok").key_version >= 1
        with pytest.raises(ForbiddenError):
            sealer.unseal("app", sealer.seal("app", b"ok").ciphertext)
    fk.api.revoke_token(made["id"])
    with fleetkey.FleetKey(server.addr, made["token"]) as revoked, pytest.raises(UnauthenticatedError):
        revoked.seal("app", b"x")


def test_fleets_devices_and_audit_page_by_page(fk: fleetkey.FleetKey) -> None:
    for i in range(3):
        fk.api.create_fleet(body={"name": f"f{i}"})
    assert {f["name"] for f in fk.fleets(limit=1)} >= {"f0", "f1", "f2"}
    assert list(fk.devices("f0", state="active", limit=10)) == []
    with pytest.raises(NotFoundError):
        list(fk.devices("nope"))
    entries = list(fk.audit(limit=7))
    assert len(entries) > 7
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    later = [e["seq"] for e in fk.audit(after=seqs[-3])]
    assert later[:2] == seqs[-2:]
    assert fk.api.audit_public_key()["public_key"].startswith("fk1sig:")


async def test_the_asyncio_client(server, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    async with fleetkey.AsyncFleetKey(server.addr, server.token) as fk:
        await fk.api.create_keyring(body={"name": "async"})
        sealed = await fk.seal("async", b"awaited", aad=b"a")
        assert await fk.unseal("async", sealed.ciphertext, aad=b"a") == b"awaited"
        with pytest.raises(CannotOpenError):
            await fk.unseal("async", sealed.ciphertext, aad=b"b")
        src = tmp_path / "big.bin"
        src.write_bytes(hashlib.sha256(b"x").digest() * 40_000)
        await fk.seal_file("async", src, tmp_path / "big.fk")
        await fk.open_file(tmp_path / "big.fk", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        names = [f["name"] async for f in fk.fleets()]
        assert isinstance(names, list)
        keyrings = await fk.call("list_keyrings")
        assert "async" in {k["name"] for k in keyrings["keyrings"]}
