#!/usr/bin/env python3
"""Vault Transit clients, unmodified, against fleetkey's Transit door.

    transit_clients.py side-by-side FLEETKEY_ADDR FLEETKEY_TOKEN OPENBAO_ADDR OPENBAO_TOKEN
        hvac runs one Transit workload against fleetkey and against a real
        OpenBao (transit mounted at transit/), and the answers must agree for
        every operation: the same fields of the same types, the same
        semantics (round trips, versions, valid/invalid, the same hash), the
        same refusals (hvac's exception class). Ciphertext bytes differ by design.

    transit_clients.py migrate FLEETKEY_ADDR FLEETKEY_TOKEN OPENBAO_ADDR OPENBAO_TOKEN
        rows encrypted by OpenBao move to fleetkey with
        scripts/migrate_from_vault_transit.py and open there.

    transit_clients.py bao FLEETKEY_ADDR FLEETKEY_TOKEN BAO_BINARY
        the `bao` CLI with BAO_ADDR pointed at fleetkey: write transit/encrypt,
        then transit/decrypt, read and list keys.

Prints one line per operation; exits 1 on the first disagreement.
"""

import base64
import json
import os
import subprocess
import sys

import hvac
import hvac.exceptions


def b64(s):
    return base64.b64encode(s.encode()).decode()


def shape(v):
    """The structure of a JSON value: field names and value types, recursively
    (a list by its first element; the `keys` map of a key by its entries)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if v is None:
        return "null"
    return type(v).__name__


class Run:
    """One client's record: per operation, the answer's shape and its meaning."""

    def __init__(self, name, client):
        self.name = name
        self.c = client
        self.t = client.secrets.transit
        self.record = []

    def op(self, label, fn, meaning=lambda r: None):
        try:
            r = fn()
        except hvac.exceptions.VaultError as e:
            self.record.append((label, "refused", type(e).__name__))
            return None
        if hasattr(r, "status_code"):  # 204: no body
            self.record.append((label, "status", r.status_code))
            return r
        self.record.append((label, shape(r), meaning(r)))
        return r


def workload(run):
    t = run.t
    run.op("create aes256-gcm96", lambda: t.create_key("wl-aes"))
    run.op("read key", lambda: t.read_key("wl-aes"), lambda r: (r["data"]["type"], r["data"]["latest_version"]))
    enc = run.op(
        "encrypt",
        lambda: t.encrypt_data("wl-aes", plaintext=b64("hello"), associated_data=b64("row 7")),
        lambda r: (r["data"]["ciphertext"].startswith("vault:v1:"), r["data"]["key_version"]),
    )
    ct = enc["data"]["ciphertext"]
    run.op(
        "decrypt",
        lambda: t.decrypt_data("wl-aes", ciphertext=ct, associated_data=b64("row 7")),
        lambda r: r["data"]["plaintext"],
    )
    run.op("decrypt with other associated data", lambda: t.decrypt_data("wl-aes", ciphertext=ct, associated_data=b64("row 8")))
    batch = run.op(
        "encrypt batch",
        lambda: t.encrypt_data("wl-aes", batch_input=[{"plaintext": b64("a")}, {"plaintext": b64("b")}]),
        lambda r: [x["key_version"] for x in r["data"]["batch_results"]],
    )
    run.op(
        "decrypt batch",
        lambda: t.decrypt_data("wl-aes", batch_input=[{"ciphertext": x["ciphertext"]} for x in batch["data"]["batch_results"]]),
        lambda r: [x["plaintext"] for x in r["data"]["batch_results"]],
    )
    plain = run.op("encrypt without associated data", lambda: t.encrypt_data("wl-aes", plaintext=b64("rewrap me")))
    old = plain["data"]["ciphertext"]
    run.op("rotate", lambda: t.rotate_key("wl-aes"))
    run.op("read after rotate", lambda: t.read_key("wl-aes"), lambda r: (r["data"]["latest_version"], sorted(r["data"]["keys"])))
    new = run.op("rewrap", lambda: t.rewrap_data("wl-aes", ciphertext=old), lambda r: r["data"]["key_version"])
    run.op("decrypt rewrapped", lambda: t.decrypt_data("wl-aes", ciphertext=new["data"]["ciphertext"]), lambda r: r["data"]["plaintext"])
    dk = run.op(
        "datakey plaintext",
        lambda: t.generate_data_key("wl-aes", key_type="plaintext", bits=256),
        lambda r: (len(base64.b64decode(r["data"]["plaintext"])), r["data"]["key_version"]),
    )
    run.op(
        "decrypt datakey",
        lambda: t.decrypt_data("wl-aes", ciphertext=dk["data"]["ciphertext"]),
        lambda r: r["data"]["plaintext"] == dk["data"]["plaintext"],
    )
    run.op("datakey wrapped", lambda: t.generate_data_key("wl-aes", key_type="wrapped", bits=128), lambda r: "plaintext" in r["data"])
    run.op(
        "config min_decryption_version",
        lambda: t.update_key_configuration("wl-aes", min_decryption_version=2),
        lambda r: r["data"]["min_decryption_version"],
    )
    run.op("decrypt below the minimum", lambda: t.decrypt_data("wl-aes", ciphertext=old))
    run.op("delete without deletion_allowed", lambda: t.delete_key("wl-aes"))
    run.op("config deletion_allowed", lambda: t.update_key_configuration("wl-aes", deletion_allowed=True), lambda r: r["data"]["deletion_allowed"])
    run.op("delete", lambda: t.delete_key("wl-aes"))
    run.op("read deleted", lambda: t.read_key("wl-aes"))
    run.op("decrypt with no key", lambda: t.decrypt_data("wl-none", ciphertext=ct))
    run.op("encrypt bad base64", lambda: t.encrypt_data("wl-bad", plaintext="%%%"))

    run.op("create ed25519", lambda: t.create_key("wl-sig", key_type="ed25519"))
    run.op("read ed25519", lambda: t.read_key("wl-sig"), lambda r: (r["data"]["supports_signing"], len(base64.b64decode(r["data"]["keys"]["1"]["public_key"]))))
    sig = run.op("sign", lambda: t.sign_data("wl-sig", hash_input=b64("msg")), lambda r: r["data"]["key_version"])
    s = sig["data"]["signature"]
    run.op("verify", lambda: t.verify_signed_data("wl-sig", hash_input=b64("msg"), signature=s), lambda r: r["data"]["valid"])
    run.op("verify other input", lambda: t.verify_signed_data("wl-sig", hash_input=b64("msh"), signature=s), lambda r: r["data"]["valid"])
    run.op("sign batch", lambda: t.sign_data("wl-sig", batch_input=[{"input": b64("a")}, {"input": b64("b")}]), lambda r: len(r["data"]["batch_results"]))

    run.op("create hmac", lambda: run.c.adapter.post("/v1/transit/keys/wl-mac", json={"type": "hmac", "key_size": 32}))
    mac = run.op("hmac", lambda: t.generate_hmac("wl-mac", hash_input=b64("m")), lambda r: r["data"]["hmac"].startswith("vault:v1:"))
    h = mac["data"]["hmac"]
    run.op("verify hmac", lambda: t.verify_signed_data("wl-mac", hash_input=b64("m"), hmac=h), lambda r: r["data"]["valid"])
    run.op("verify hmac other input", lambda: t.verify_signed_data("wl-mac", hash_input=b64("n"), hmac=h), lambda r: r["data"]["valid"])

    run.op("random", lambda: t.generate_random_bytes(n_bytes=16), lambda r: len(base64.b64decode(r["data"]["random_bytes"])))
    run.op("random hex", lambda: t.generate_random_bytes(n_bytes=8, output_format="hex"), lambda r: len(r["data"]["random_bytes"]))
    run.op("hash sha2-256", lambda: t.hash_data(b64("abc"), algorithm="sha2-256"), lambda r: r["data"]["sum"])
    run.op("hash sha2-512 base64", lambda: t.hash_data(b64("abc"), algorithm="sha2-512", output_format="base64"), lambda r: r["data"]["sum"])
    run.op("list", lambda: t.list_keys(), lambda r: sorted(r["data"]["keys"]))
    run.record.append(("authenticated", "bool", run.c.is_authenticated()))
    run.record.append(("sealed", "bool", run.c.sys.is_sealed()))


def side_by_side(fk_addr, fk_token, bao_addr, bao_token):
    runs = []
    for name, addr, token in [("fleetkey", fk_addr, fk_token), ("openbao", bao_addr, bao_token)]:
        r = Run(name, hvac.Client(url=addr, token=token))
        workload(r)
        runs.append(r)
    fk, ob = runs
    assert len(fk.record) == len(ob.record), (len(fk.record), len(ob.record))
    failures = 0
    for (label, fs, fm), (_, os_, om) in zip(fk.record, ob.record):
        same = fs == os_ and fm == om
        print(f"{'same' if same else 'DIFFERENT':9} {label}")
        if not same:
            failures += 1
            print("  fleetkey:", json.dumps([fs, fm]))
            print("  openbao: ", json.dumps([os_, om]))
    print(f"{len(fk.record) - failures} of {len(fk.record)} operations answered alike")
    return 1 if failures else 0


def bao_cli(fk_addr, fk_token, binary):
    env = dict(os.environ, BAO_ADDR=fk_addr, BAO_TOKEN=fk_token)
    env.pop("VAULT_ADDR", None)

    def bao(*args):
        out = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise SystemExit(f"bao {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out.stdout.strip()

    ct = bao("write", "-field=ciphertext", "transit/encrypt/cli-key", f"plaintext={b64('hello from bao')}")
    assert ct.startswith("vault:v1:"), ct
    print("bao write transit/encrypt: ok")
    pt = bao("write", "-field=plaintext", "transit/decrypt/cli-key", f"ciphertext={ct}")
    assert base64.b64decode(pt) == b"hello from bao", pt
    print("bao write transit/decrypt: ok")
    key = json.loads(bao("read", "-format=json", "transit/keys/cli-key"))
    assert key["data"]["type"] == "aes256-gcm96", key
    print("bao read transit/keys: ok")
    keys = json.loads(bao("list", "-format=json", "transit/keys"))
    assert "cli-key" in keys, keys
    print("bao list transit/keys: ok")
    rewrapped = bao("write", "-field=ciphertext", "transit/rewrap/cli-key", f"ciphertext={ct}", "key_version=1")
    assert rewrapped.startswith("vault:v1:"), rewrapped
    print("bao write transit/rewrap: ok")
    return 0


def migrate(fk_addr, fk_token, bao_addr, bao_token):
    """Rows encrypted by OpenBao move to fleetkey with
    scripts/migrate_from_vault_transit.py and open there to what they were."""
    ob = hvac.Client(url=bao_addr, token=bao_token).secrets.transit
    fk = hvac.Client(url=fk_addr, token=fk_token).secrets.transit
    ob.create_key("migrated")
    rows, plain = [], {}
    for i in range(150):
        p = b64(f"row {i}")
        ad = b64(f"table orders {i}") if i % 2 else None
        ct = ob.encrypt_data("migrated", plaintext=p, associated_data=ad)["data"]["ciphertext"]
        row = {"id": f"r{i}", "ciphertext": ct}
        if ad:
            row["associated_data"] = ad
        rows.append(row)
        plain[row["id"]] = (p, ad)
    rows.append({"id": "bad", "ciphertext": "vault:v1:AAAA"})
    here = os.path.dirname(os.path.abspath(__file__))
    tool = os.path.join(here, "..", "..", "scripts", "migrate_from_vault_transit.py")
    out = subprocess.run(
        [sys.executable, tool, "--from-addr", bao_addr, "--from-token", bao_token, "--from-key", "migrated",
         "--to-addr", fk_addr, "--to-token", fk_token, "--to-key", "migrated", "--verify"],
        input="".join(json.dumps(r) + "\n" for r in rows), capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert "re-encrypted 150, failed 1" in out.stderr, out.stderr
    moved = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(moved) == 151 and "source decrypt" in moved[-1]["error"], moved[-1]
    for m in moved[:-1]:
        p, ad = plain[m["id"]]
        got = fk.decrypt_data("migrated", ciphertext=m["ciphertext"], associated_data=ad)["data"]["plaintext"]
        assert got == p, (m, got)
    print("150 OpenBao ciphertexts re-encrypted under fleetkey and opened there; the bad row reported")
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "side-by-side":
        return side_by_side(*argv[2:])
    if len(argv) == 6 and argv[1] == "migrate":
        return migrate(*argv[2:])
    if len(argv) == 5 and argv[1] == "bao":
        return bao_cli(*argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
