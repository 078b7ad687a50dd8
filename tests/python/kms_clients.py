#!/usr/bin/env python3
"""AWS KMS clients, unmodified, against fleetkey's AWS KMS door.

    kms_clients.py FLEETKEY_ADDR ADMIN_TOKEN
    kms_clients.py migrate FLEETKEY_ADDR ADMIN_TOKEN SOURCE_KMS_URL SOURCE_KEY_ID

Creates tokens and their AWS access keys through fleetkey's native API, then:
boto3 runs every supported operation and its refusals (wrong context,
disabled key, pending deletion, bad signatures, unknown, revoked and expired
credentials, missing scopes, oversized input, unsupported operations); an
Ed25519 signature is checked with `cryptography` against the DER public key
GetPublicKey returns; the AWS Encryption SDK encrypts with a KMS master key
provider whose client points at fleetkey and a fresh process decrypts; the
AWS CLI encrypts, decrypts and makes a data key.

Prints one line per check; exits non-zero at the first failure.
"""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore.exceptions
from botocore.config import Config

REGION = "eu-west-1"


def native(addr, token, method, path, body=None):
    req = urllib.request.Request(
        addr + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


def access_key(addr, admin, scopes=None, ttl=None):
    """A new token (admin when scopes is None) and an access key pair for it."""
    if scopes is None:
        token = admin
    else:
        body = {"name": f"kms-{len(scopes)}-{time.time_ns()}", "scopes": scopes}
        if ttl:
            body["ttl_secs"] = ttl
        token = native(addr, admin, "POST", "/v1/tokens", body)["token"]
    k = native(addr, token, "POST", "/v1/tokens/aws-access-keys", {})
    assert k["access_key_id"].startswith("FKIA"), k
    return token, k


def client(addr, key, **kw):
    return boto3.client(
        "kms",
        endpoint_url=addr,
        region_name=REGION,
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret_access_key"],
        config=Config(retries={"max_attempts": 1}),
        **kw,
    )


def refused(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return
    raise AssertionError(f"expected {code}, the call succeeded")


def ok(what):
    print(f"ok   {what}", flush=True)


def boto3_workload(addr, admin):
    _, key = access_key(addr, admin)
    kms = client(addr, key)

    # Keys, ids, ARNs, aliases.
    meta = kms.create_key(Description="orders", Tags=[{"TagKey": "team", "TagValue": "pay"}])["KeyMetadata"]
    kid, karn = meta["KeyId"], meta["Arn"]
    assert len(kid) == 36 and karn == f"arn:aws:kms:{REGION}:000000000000:key/{kid}", meta
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["KeyUsage"] == "ENCRYPT_DECRYPT" and meta["Enabled"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    for ref in (kid, karn):
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"] == kid
    page = kms.list_keys(Limit=1)
    assert page["Truncated"] and len(page["Keys"]) == 1
    rest = kms.list_keys(Limit=1000, Marker=page["NextMarker"])
    assert {k["KeyId"] for k in page["Keys"] + rest["Keys"]} >= {kid, other}
    ok("CreateKey, DescribeKey (id and ARN), ListKeys with paging")
    kms.create_alias(AliasName="alias/orders", TargetKeyId=kid)
    assert kms.describe_key(KeyId="alias/orders")["KeyMetadata"]["KeyId"] == kid
    assert kms.describe_key(KeyId=f"arn:aws:kms:{REGION}:000000000000:alias/orders")["KeyMetadata"]["KeyId"] == kid
    refused("AlreadyExistsException", kms.create_alias, AliasName="alias/orders", TargetKeyId=other)
    aliases = kms.list_aliases(KeyId=kid)["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/orders"], aliases
    kms.update_alias(AliasName="alias/orders", TargetKeyId=other)
    assert kms.describe_key(KeyId="alias/orders")["KeyMetadata"]["KeyId"] == other
    kms.update_alias(AliasName="alias/orders", TargetKeyId=kid)
    kms.create_alias(AliasName="alias/temp", TargetKeyId=kid)
    kms.delete_alias(AliasName="alias/temp")
    refused("NotFoundException", kms.describe_key, KeyId="alias/temp")
    refused("NotFoundException", kms.describe_key, KeyId="00000000-0000-4000-8000-000000000000")
    ok("CreateAlias, UpdateAlias, DeleteAlias, ListAliases; aliases and alias ARNs as KeyId")

    # Encrypt, Decrypt, ReEncrypt under an encryption context.
    ctx = {"tenant": "acme", "table": "orders"}
    ct = kms.encrypt(KeyId="alias/orders", Plaintext=b"card 4111", EncryptionContext=ctx)
    assert ct["KeyId"] == karn and ct["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = ct["CiphertextBlob"]
    assert blob[:4] == b"fken", "the CiphertextBlob is an fk1 envelope"
    d = kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
    assert d["Plaintext"] == b"card 4111" and d["KeyId"] == karn
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx, KeyId=karn)["Plaintext"] == b"card 4111"
    refused("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob, EncryptionContext={"tenant": "other", "table": "orders"})
    refused("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob)
    refused("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx, KeyId=other)
    refused("InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"not an envelope")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    refused("InvalidCiphertextException", kms.decrypt, CiphertextBlob=tampered, EncryptionContext=ctx)
    refused("ValidationException", kms.encrypt, KeyId=kid, Plaintext=b"x" * 4097)
    moved = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=ctx, DestinationKeyId=other, DestinationEncryptionContext={"v": "2"})
    assert moved["SourceKeyId"] == karn and moved["KeyId"].endswith(other)
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"v": "2"})["Plaintext"] == b"card 4111"
    ok("Encrypt, Decrypt (with and without KeyId), ReEncrypt; wrong context, wrong key, tampered, oversized refused")

    dk = kms.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext=ctx)
    assert len(dk["Plaintext"]) == 32
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    assert len(kms.generate_data_key(KeyId=kid, NumberOfBytes=64)["Plaintext"]) == 64
    assert len(kms.generate_data_key(KeyId=kid, KeySpec="AES_128")["Plaintext"]) == 16
    wo = kms.generate_data_key_without_plaintext(KeyId=kid, KeySpec="AES_256")
    assert "Plaintext" not in wo and len(kms.decrypt(CiphertextBlob=wo["CiphertextBlob"])["Plaintext"]) == 32
    refused("ValidationException", kms.generate_data_key, KeyId=kid)
    pair = kms.generate_data_key_pair(KeyId=kid, KeyPairSpec="ECC_NIST_EDWARDS25519", EncryptionContext=ctx)
    from cryptography.hazmat.primitives.serialization import load_der_private_key, load_der_public_key

    priv = load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    load_der_public_key(pair["PublicKey"]).verify(priv.sign(b"doc"), b"doc")
    opened = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)["Plaintext"]
    assert opened == pair["PrivateKeyPlaintext"]
    wo_pair = kms.generate_data_key_pair_without_plaintext(KeyId=kid, KeyPairSpec="ECC_NIST_EDWARDS25519")
    assert "PrivateKeyPlaintext" not in wo_pair and wo_pair["KeyPairSpec"] == "ECC_NIST_EDWARDS25519"
    refused("UnsupportedOperationException", kms.generate_data_key_pair, KeyId=kid, KeyPairSpec="RSA_2048")
    assert len(kms.generate_random(NumberOfBytes=48)["Plaintext"]) == 48
    refused("ValidationException", kms.generate_random, NumberOfBytes=2000)
    ok("GenerateDataKey (AES_256, AES_128, NumberOfBytes), GenerateDataKeyWithoutPlaintext, GenerateDataKeyPair(WithoutPlaintext) (an Ed25519 pair that cryptography loads and signs with), GenerateRandom")

    # Signing, checked independently against the DER public key.
    sk = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert sk["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"], sk
    sig = kms.sign(KeyId=sk["KeyId"], Message=b"release 1.2", SigningAlgorithm="ED25519_SHA_512")["Signature"]
    pub = kms.get_public_key(KeyId=sk["KeyId"])
    assert pub["KeySpec"] == "ECC_NIST_EDWARDS25519"
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    load_der_public_key(pub["PublicKey"]).verify(sig, b"release 1.2")
    v = kms.verify(KeyId=sk["KeyId"], Message=b"release 1.2", Signature=sig, SigningAlgorithm="ED25519_SHA_512")
    assert v["SignatureValid"]
    refused("KMSInvalidSignatureException", kms.verify, KeyId=sk["KeyId"], Message=b"release 1.3", Signature=sig, SigningAlgorithm="ED25519_SHA_512")
    ph = kms.sign(KeyId=sk["KeyId"], Message=b"release 1.2", SigningAlgorithm="ED25519_PH_SHA_512")["Signature"]
    assert kms.verify(KeyId=sk["KeyId"], Message=b"release 1.2", Signature=ph, SigningAlgorithm="ED25519_PH_SHA_512")["SignatureValid"]
    refused("InvalidKeyUsageException", kms.sign, KeyId=sk["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    refused("InvalidKeyUsageException", kms.encrypt, KeyId=sk["KeyId"], Plaintext=b"m")
    pq = kms.create_key(KeySpec="ML_DSA_65", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    s2 = kms.sign(KeyId=pq, Message=b"m", SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    assert len(s2) == 3309
    assert kms.verify(KeyId=pq, Message=b"m", Signature=s2, SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"]
    ok("Sign, Verify, GetPublicKey (Ed25519 checked by cryptography; Ed25519ph; ML-DSA-65); wrong algorithm and usage refused")

    mk = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = kms.generate_mac(KeyId=mk, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert len(mac) == 32
    assert kms.verify_mac(KeyId=mk, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    refused("KMSInvalidMacException", kms.verify_mac, KeyId=mk, Message=b"n", Mac=mac, MacAlgorithm="HMAC_SHA_256")
    refused("InvalidKeyUsageException", kms.generate_mac, KeyId=mk, Message=b"m", MacAlgorithm="HMAC_SHA_512")
    ok("GenerateMac, VerifyMac; a wrong MAC and algorithm refused")

    # Rotation, tags, states.
    st = kms.get_key_rotation_status(KeyId=kid)
    assert st["KeyRotationEnabled"] and st["RotationPeriodInDays"] == 90, st
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=180)
    assert kms.get_key_rotation_status(KeyId=kid)["RotationPeriodInDays"] == 180
    refused("UnsupportedOperationException", kms.disable_key_rotation, KeyId=kid)
    kms.rotate_key_on_demand(KeyId=kid)
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"card 4111"
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "env", "TagValue": "prod"}])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=kid)["Tags"]}
    assert tags == {"team": "pay", "env": "prod"}, tags
    kms.untag_resource(KeyId=kid, TagKeys=["team"])
    assert [t["TagKey"] for t in kms.list_resource_tags(KeyId=kid)["Tags"]] == ["env"]
    ok("GetKeyRotationStatus, EnableKeyRotation, RotateKeyOnDemand (old ciphertexts still open), TagResource, UntagResource, ListResourceTags")
    kms.disable_key(KeyId=kid)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Disabled"
    refused("DisabledException", kms.encrypt, KeyId=kid, Plaintext=b"x")
    refused("DisabledException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
    kms.enable_key(KeyId=kid)
    sched = kms.schedule_key_deletion(KeyId=other, PendingWindowInDays=7)
    assert sched["KeyState"] == "PendingDeletion" and sched["PendingWindowInDays"] == 7
    refused("KMSInvalidStateException", kms.encrypt, KeyId=other, Plaintext=b"x")
    refused("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=other)
    refused("ValidationException", kms.schedule_key_deletion, KeyId=kid, PendingWindowInDays=3)
    kms.cancel_key_deletion(KeyId=other)
    assert kms.describe_key(KeyId=other)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=other)
    ok("DisableKey, EnableKey, ScheduleKeyDeletion, CancelKeyDeletion; disabled and pending-deletion keys refused")

    # Refusals of the protocol.
    refused("UnsupportedOperationException", kms.list_grants, KeyId=kid)
    wrong = dict(key, secret_access_key=key["secret_access_key"][:-2] + "AA")
    refused("InvalidSignatureException", client(addr, wrong).encrypt, KeyId=kid, Plaintext=b"x")
    unknown = dict(key, access_key_id="FKIA0000000000000000")
    refused("UnrecognizedClientException", client(addr, unknown).encrypt, KeyId=kid, Plaintext=b"x")
    req = urllib.request.Request(addr + "/", method="POST", data=b"{}", headers={"X-Amz-Target": "TrentService.ListKeys", "Content-Type": "application/x-amz-json-1.1"})
    try:
        urllib.request.urlopen(req)
        raise AssertionError("an unsigned request was accepted")
    except urllib.error.HTTPError as e:
        assert json.loads(e.read())["__type"] == "MissingAuthenticationTokenException"
    _, scoped = access_key(addr, admin, [f"seal:{kid}"])
    sc = client(addr, scoped)
    assert sc.encrypt(KeyId=kid, Plaintext=b"x")["KeyId"] == karn
    refused("AccessDeniedException", sc.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
    refused("AccessDeniedException", sc.create_key)
    rtoken, revoked = access_key(addr, admin, [f"seal:{kid}"])
    tid = [t for t in native(addr, admin, "GET", "/v1/tokens")["tokens"] if t["id"] == revoked["token_id"]][0]["id"]
    native(addr, admin, "POST", f"/v1/tokens/{tid}/revoke")
    refused("UnrecognizedClientException", client(addr, revoked).encrypt, KeyId=kid, Plaintext=b"x")
    _, short = access_key(addr, admin, [f"seal:{kid}"], ttl=1)
    time.sleep(2.2)
    refused("UnrecognizedClientException", client(addr, short).encrypt, KeyId=kid, Plaintext=b"x")
    ok("unsupported operation, bad signature, unknown, unsigned, out-of-scope, revoked and expired credentials refused")
    return key, kid, karn


ESDK_DECRYPT = r"""
import sys, aws_encryption_sdk
from aws_encryption_sdk.identifiers import CommitmentPolicy
c = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
p = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[sys.argv[1]])
pt, header = c.decrypt(source=sys.stdin.buffer.read(), key_provider=p)
assert header.encryption_context["purpose"] == "ci", header.encryption_context
sys.stdout.buffer.write(pt)
"""


def esdk_and_cli(addr, key, karn):
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL_KMS=addr,
        AWS_ACCESS_KEY_ID=key["access_key_id"],
        AWS_SECRET_ACCESS_KEY=key["secret_access_key"],
        AWS_DEFAULT_REGION=REGION,
    )
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(k, None)
    message = os.urandom(5000)
    enc = subprocess.run(
        [sys.executable, "-c", r"""
import sys, aws_encryption_sdk
from aws_encryption_sdk.identifiers import CommitmentPolicy
c = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
p = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[sys.argv[1]])
ct, _ = c.encrypt(source=sys.stdin.buffer.read(), key_provider=p, encryption_context={"purpose": "ci"})
sys.stdout.buffer.write(ct)
""", karn],
        input=message, capture_output=True, env=env, timeout=120,
    )
    assert enc.returncode == 0, enc.stderr.decode()
    dec = subprocess.run([sys.executable, "-c", ESDK_DECRYPT, karn], input=enc.stdout, capture_output=True, env=env, timeout=120)
    assert dec.returncode == 0, dec.stderr.decode()
    assert dec.stdout == message
    ok("AWS Encryption SDK: a message encrypted with a KMS master key provider on fleetkey, decrypted by a fresh process")

    def aws(*args, data=None):
        out = subprocess.run(["aws", "kms", *args, "--endpoint-url", addr, "--output", "json"], input=data, capture_output=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr.decode()
        return json.loads(out.stdout)

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.bin")
        with open(src, "wb") as f:
            f.write(b"from the aws cli")
        ct = aws("encrypt", "--key-id", karn, "--plaintext", f"fileb://{src}", "--encryption-context", "app=cli")
        blob = os.path.join(d, "ct.bin")
        with open(blob, "wb") as f:
            f.write(base64.b64decode(ct["CiphertextBlob"]))
        pt = aws("decrypt", "--ciphertext-blob", f"fileb://{blob}", "--encryption-context", "app=cli")
        assert base64.b64decode(pt["Plaintext"]) == b"from the aws cli", pt
        dk = aws("generate-data-key", "--key-id", karn, "--key-spec", "AES_256")
        assert len(base64.b64decode(dk["Plaintext"])) == 32
    ok("AWS CLI: kms encrypt, decrypt, generate-data-key with --endpoint-url")


def migrate(addr, admin, moto_url, moto_key):
    """Rows encrypted by a KMS-compatible server (moto) move to fleetkey with
    scripts/migrate_from_aws_kms.py and open there to what they were."""
    src_env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIAFLEETKEYMIGRATE", AWS_SECRET_ACCESS_KEY="migrate", AWS_DEFAULT_REGION="us-east-2")
    for k in ("AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        src_env.pop(k, None)
    src = boto3.client("kms", endpoint_url=moto_url, region_name="us-east-2", aws_access_key_id="AKIAFLEETKEYMIGRATE", aws_secret_access_key="migrate")
    _, key = access_key(addr, admin)
    fk = client(addr, key)
    kid = fk.create_key()["KeyMetadata"]["KeyId"]
    fk.create_alias(AliasName="alias/migrated", TargetKeyId=kid)
    rows, plain = [], {}
    for i in range(40):
        ctx = {"row": str(i)} if i % 2 else {}
        blob = src.encrypt(KeyId=moto_key, Plaintext=f"row {i}".encode(), EncryptionContext=ctx)["CiphertextBlob"]
        rows.append({"id": f"r{i}", "ciphertext": base64.b64encode(blob).decode(), "encryption_context": ctx})
        plain[f"r{i}"] = (f"row {i}".encode(), ctx)
    rows.append({"id": "bad", "ciphertext": base64.b64encode(b"not a ciphertext").decode()})
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "migrate_from_aws_kms.py")
    out = subprocess.run(
        [sys.executable, tool, "--from-endpoint-url", moto_url, "--from-region", "us-east-2", "--to-addr", addr,
         "--to-access-key-id", key["access_key_id"], "--to-secret-access-key", key["secret_access_key"],
         "--to-key", "alias/migrated", "--verify"],
        input="".join(json.dumps(r) + "\n" for r in rows), capture_output=True, text=True, env=src_env, timeout=120,
    )
    assert out.returncode == 1 and "re-encrypted 40, failed 1" in out.stderr, (out.returncode, out.stderr)
    moved = [json.loads(line) for line in out.stdout.splitlines()]
    assert "source decrypt" in moved[-1]["error"], moved[-1]
    for m in moved[:-1]:
        pt, ctx = plain[m["id"]]
        got = fk.decrypt(CiphertextBlob=base64.b64decode(m["ciphertext"]), EncryptionContext=ctx)
        assert got["Plaintext"] == pt and got["KeyId"].endswith(kid), got
    ok("40 ciphertexts made by a KMS-compatible server (moto) re-encrypted under fleetkey and opened there; a bad row reported")


def main(argv):
    if len(argv) == 6 and argv[1] == "migrate":
        migrate(*argv[2:])
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    addr, admin = argv[1], argv[2]
    key, _, karn = boto3_workload(addr, admin)
    esdk_and_cli(addr, key, karn)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
