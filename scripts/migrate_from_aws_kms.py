#!/usr/bin/env python3
"""Re-encrypt AWS KMS ciphertexts under fleetkey.

Reads JSON lines from standard input, one stored ciphertext each:

    {"id": "row-17", "ciphertext": "<base64 CiphertextBlob>", "encryption_context": {"k": "v"}}

decrypts each with AWS KMS (the source: the standard AWS credential chain and
region, or --from-endpoint-url/--from-region) and encrypts the plaintext with
the fleetkey key --to-key through fleetkey's AWS KMS door, under the same
encryption context, then writes one JSON line per input:

    {"id": "row-17", "ciphertext": "<base64 fleetkey CiphertextBlob>"}   (or "error": "…")

Plaintexts pass through this process's memory only. fleetkey's ciphertexts
cannot be read by AWS KMS, so this is one-way: keep the AWS key until every row
is re-encrypted and checked (--verify decrypts each new ciphertext through
fleetkey and compares).

    fleetkey tokens aws-credentials --json        # the destination's pair
    scripts/migrate_from_aws_kms.py --to-addr https://fleetkey.example:8400 \\
        --to-access-key-id "$FK_ID" --to-secret-access-key "$FK_SECRET" \\
        --to-key alias/orders --verify < ciphertexts.jsonl > migrated.jsonl

The source credentials need kms:Decrypt; the fleetkey token behind the access
key `seal:<to-key>` (and `unseal:<to-key>` for --verify). Needs boto3.
"""

import argparse
import base64
import json
import sys

import boto3
import botocore.exceptions


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from-endpoint-url", default=None, help="the source's endpoint (default: AWS's)")
    ap.add_argument("--from-region", default=None)
    ap.add_argument("--to-addr", required=True)
    ap.add_argument("--to-access-key-id", required=True)
    ap.add_argument("--to-secret-access-key", required=True)
    ap.add_argument("--to-region", default="us-east-1", help="any region: fleetkey answers ARNs in it")
    ap.add_argument("--to-key", required=True, help="key id, key ARN or alias/NAME on fleetkey")
    ap.add_argument("--verify", action="store_true")
    a = ap.parse_args()
    src = boto3.client("kms", endpoint_url=a.from_endpoint_url, region_name=a.from_region)
    dst = boto3.client(
        "kms",
        endpoint_url=a.to_addr,
        region_name=a.to_region,
        aws_access_key_id=a.to_access_key_id,
        aws_secret_access_key=a.to_secret_access_key,
    )
    done = failed = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        row = json.loads(line)
        out = {"id": row.get("id")}
        ctx = row.get("encryption_context") or {}
        try:
            blob = base64.b64decode(row["ciphertext"], validate=True)
            pt = src.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"]
        except (botocore.exceptions.ClientError, ValueError, KeyError) as e:
            out["error"] = f"source decrypt: {e}"
        else:
            try:
                new = dst.encrypt(KeyId=a.to_key, Plaintext=pt, EncryptionContext=ctx)["CiphertextBlob"]
                if a.verify and dst.decrypt(CiphertextBlob=new, EncryptionContext=ctx)["Plaintext"] != pt:
                    raise ValueError("verify: the new ciphertext does not open to the same plaintext")
                out["ciphertext"] = base64.b64encode(new).decode()
            except (botocore.exceptions.ClientError, ValueError) as e:
                out["error"] = f"fleetkey encrypt: {e}"
            del pt
        failed += "error" in out
        done += "ciphertext" in out
        print(json.dumps(out), flush=True)
    print(f"re-encrypted {done}, failed {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
