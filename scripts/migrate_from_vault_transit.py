#!/usr/bin/env python3
"""Re-encrypt Vault/OpenBao Transit ciphertexts under fleetkey.

Reads JSON lines from standard input, one stored ciphertext each:

    {"id": "row-17", "ciphertext": "vault:v3:…", "associated_data": "<base64, optional>"}

decrypts each with the *source* service's Transit key (Vault or OpenBao,
where it was made) and encrypts the plaintext with the fleetkey key of the same
or another name through fleetkey's Transit door, then writes one JSON line per
input to standard output:

    {"id": "row-17", "ciphertext": "vault:v1:…"}            (or "error": "…")

Plaintexts pass through this process's memory only, in batches of --batch
(default 100), and are never written anywhere. A ciphertext made by fleetkey
cannot be read by Vault, so this is one-way: keep the source key until every
row is re-encrypted and checked (--verify decrypts each new ciphertext
through fleetkey and compares).

    scripts/migrate_from_vault_transit.py \\
        --from-addr https://vault.example:8200 --from-token "$VAULT_TOKEN" --from-key orders \\
        --to-addr https://fleetkey.example:8400 --to-token "$FLEETKEY_TOKEN" --to-key orders \\
        < ciphertexts.jsonl > migrated.jsonl

The source token needs Transit's decrypt on the key; the fleetkey token
`seal:<to-key>` (and `unseal:<to-key>` with --verify). Needs `pip install hvac`.
"""

import argparse
import json
import sys

import hvac
import hvac.exceptions


def chunks(lines, n):
    batch = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        batch.append(json.loads(line))
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def item(row, field, value):
    out = {field: value}
    if row.get("associated_data"):
        out["associated_data"] = row["associated_data"]
    return out


def batch(client, path, items):
    """`batch_input` answered item by item: with partial_failure_response_code
    200 a batch with some failed items is a 200 whose items say which; when
    every item failed, Transit answers 400 and each item gets that error."""
    try:
        r = client._adapter.post(path, json={"batch_input": items, "partial_failure_response_code": 200})
    except hvac.exceptions.InvalidRequest as e:
        return [{"error": str(e)}] * len(items)
    return r["data"]["batch_results"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from-addr", required=True)
    ap.add_argument("--from-token", required=True)
    ap.add_argument("--from-key", required=True)
    ap.add_argument("--from-mount", default="transit")
    ap.add_argument("--to-addr", required=True)
    ap.add_argument("--to-token", required=True)
    ap.add_argument("--to-key", required=True)
    ap.add_argument("--to-mount", default="transit")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--verify", action="store_true")
    a = ap.parse_args()
    src = hvac.Client(url=a.from_addr, token=a.from_token).secrets.transit
    dst = hvac.Client(url=a.to_addr, token=a.to_token).secrets.transit
    done = failed = 0
    for rows in chunks(sys.stdin, max(1, a.batch)):
        opened = batch(
            src, f"/v1/{a.from_mount}/decrypt/{a.from_key}", [item(r, "ciphertext", r["ciphertext"]) for r in rows]
        )
        out = [{"id": r.get("id")} for r in rows]
        todo = []
        for o, r, res in zip(out, rows, opened):
            if res.get("error"):
                o["error"] = f"source decrypt: {res['error']}"
            else:
                todo.append((o, item(r, "plaintext", res["plaintext"])))
        if todo:
            sealed = batch(dst, f"/v1/{a.to_mount}/encrypt/{a.to_key}", [t for _, t in todo])
            for (o, t), res in zip(todo, sealed):
                if res.get("error"):
                    o["error"] = f"fleetkey encrypt: {res['error']}"
                else:
                    o["ciphertext"] = res["ciphertext"]
            if a.verify:
                ok = [(o, t) for o, t in todo if "ciphertext" in o]
                if ok:
                    back = batch(
                        dst,
                        f"/v1/{a.to_mount}/decrypt/{a.to_key}",
                        [{**t, "ciphertext": o["ciphertext"]} for o, t in ok],
                    )
                    for (o, t), res in zip(ok, back):
                        if res.get("plaintext") != t["plaintext"]:
                            o.pop("ciphertext", None)
                            o["error"] = "verify: the new ciphertext does not open to the same plaintext"
        for o in out:
            failed += "error" in o
            done += "ciphertext" in o
            print(json.dumps(o), flush=True)
    print(f"re-encrypted {done}, failed {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
