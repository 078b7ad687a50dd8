#!/usr/bin/env python3
"""Hostile input through the Vault Transit and AWS KMS doors of a running
`fleetkey serve` (hypothesis, the engine under schemathesis): request bodies
built from each endpoint's real parameter names with values of every JSON type
(and raw non-JSON bytes), sent to every Transit endpoint and, signed with
botocore's Signature Version 4, to every AWS KMS operation.

Every answer must be a refusal or a success in the door's own shape — never a
5xx, never a body of another shape:
  Transit: 2xx with {"data": …} or 204, 4xx with {"errors": [str, …]}, or
           a batch's 4xx with {"data": {"batch_results": […]}} (as in Vault);
  AWS KMS: 200 with a JSON object, or 4xx with {"__type": str, "message": str}.

    doors_fuzz.py FLEETKEY_ADDR ADMIN_TOKEN [EXAMPLES]
"""

import json
import sys
import urllib.error
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ADDR, TOKEN = sys.argv[1], sys.argv[2]
EXAMPLES = int(sys.argv[3]) if len(sys.argv) > 3 else 200


def http(method, path, body, headers):
    req = urllib.request.Request(ADDR + path, method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def native(method, path, body):
    return json.loads(http(method, path, json.dumps(body).encode(), {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})[1] or b"null")


# Keys of each type both doors can reach.
for name, alg in [("fz-aes", "aes-256-gcm"), ("fz-sig", "ed25519"), ("fz-mac", "hmac-sha256"), ("fz-pq", "ml-dsa-65")]:
    native("POST", "/v1/keyrings", {"name": name, "algorithm": alg})
KEY = native("POST", "/v1/tokens/aws-access-keys", {})
if not isinstance(KEY, dict) or "access_key_id" not in KEY:
    sys.exit(f"could not make an AWS access key for the admin token: {KEY}")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["", "0", "1", "true", "24h", "-5", "vault:v1:AAAA", "vault:v0:", "aGk=", "%%%", "alias/fz", "fz-aes", "SYMMETRIC_DEFAULT", "RAW", "DIGEST", "ECC_NIST_EDWARDS25519"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)

TRANSIT = {
    "keys/fz-new": ["type", "exportable", "derived", "convergent_encryption", "auto_rotate_period", "key_size", "allow_plaintext_backup"],
    "keys/fz-aes/config": ["min_decryption_version", "min_encryption_version", "deletion_allowed", "exportable", "auto_rotate_period", "allow_plaintext_backup"],
    "encrypt/fz-aes": ["plaintext", "associated_data", "context", "nonce", "key_version", "batch_input", "type", "partial_failure_response_code"],
    "decrypt/fz-aes": ["ciphertext", "associated_data", "context", "nonce", "batch_input", "partial_failure_response_code"],
    "rewrap/fz-aes": ["ciphertext", "associated_data", "key_version", "batch_input"],
    "datakey/plaintext/fz-aes": ["bits", "associated_data", "context", "nonce"],
    "sign/fz-sig": ["input", "hash_algorithm", "prehashed", "key_version", "batch_input", "signature_algorithm"],
    "verify/fz-sig": ["input", "signature", "hmac", "prehashed", "batch_input", "hash_algorithm"],
    "hmac/fz-mac": ["input", "algorithm", "key_version", "batch_input"],
    "verify/fz-mac/sha2-256": ["input", "hmac", "batch_input"],
    "random": ["bytes", "format", "source"],
    "hash": ["input", "algorithm", "format"],
}

KMS = {
    "Encrypt": ["KeyId", "Plaintext", "EncryptionContext", "EncryptionAlgorithm", "GrantTokens", "DryRun"],
    "Decrypt": ["CiphertextBlob", "KeyId", "EncryptionContext", "EncryptionAlgorithm"],
    "ReEncrypt": ["CiphertextBlob", "DestinationKeyId", "SourceKeyId", "SourceEncryptionContext", "DestinationEncryptionContext"],
    "GenerateDataKey": ["KeyId", "KeySpec", "NumberOfBytes", "EncryptionContext"],
    "GenerateDataKeyWithoutPlaintext": ["KeyId", "KeySpec", "NumberOfBytes"],
    "GenerateDataKeyPair": ["KeyId", "KeyPairSpec", "EncryptionContext"],
    "GenerateRandom": ["NumberOfBytes"],
    "Sign": ["KeyId", "Message", "MessageType", "SigningAlgorithm"],
    "Verify": ["KeyId", "Message", "MessageType", "Signature", "SigningAlgorithm"],
    "GetPublicKey": ["KeyId"],
    "GenerateMac": ["KeyId", "Message", "MacAlgorithm"],
    "VerifyMac": ["KeyId", "Message", "Mac", "MacAlgorithm"],
    "CreateKey": ["KeySpec", "KeyUsage", "Description", "Tags", "Origin", "Policy"],
    "DescribeKey": ["KeyId"],
    "ListKeys": ["Limit", "Marker"],
    "CreateAlias": ["AliasName", "TargetKeyId"],
    "ListAliases": ["KeyId", "Limit", "Marker"],
    "EnableKeyRotation": ["KeyId", "RotationPeriodInDays"],
    "ScheduleKeyDeletion": ["KeyId", "PendingWindowInDays"],
    "TagResource": ["KeyId", "Tags"],
    "ListResourceTags": ["KeyId", "Limit", "Marker"],
}


def bodies(fields):
    objects = st.fixed_dictionaries({}, optional={f: values for f in fields}).map(lambda d: json.dumps(d).encode())
    junk = st.binary(max_size=64) | st.sampled_from([b"", b"{", b"[]", b"null", b'{"a":1,"a":2}', b"{" * 200])
    return st.one_of(objects, objects, objects, junk)


SEEN = {"transit": set(), "kms": set()}


def transit_shape(status, raw):
    SEEN["transit"].add(status)
    assert status not in (401, 403), ("the fuzzing token was refused", raw[:300])
    assert status < 500, (status, raw[:300])
    if status == 204:
        return
    body = json.loads(raw)
    if status < 300:
        assert isinstance(body.get("data"), dict), raw[:300]
    elif "errors" in body:
        assert isinstance(body["errors"], list) and all(isinstance(e, str) for e in body["errors"]), raw[:300]
    else:
        # A batch with failed items is a 400 carrying each item's result, as in Vault.
        results = body["data"]["batch_results"]
        assert any(isinstance(r.get("error"), str) for r in results), raw[:300]


def kms_shape(status, raw):
    SEEN["kms"].add(status)
    assert status < 500, (status, raw[:300])
    body = json.loads(raw)
    assert body.get("__type") not in ("UnrecognizedClientException", "InvalidSignatureException"), raw[:300]
    assert isinstance(body, dict), raw[:300]
    if status != 200:
        assert isinstance(body.get("__type"), str) and isinstance(body.get("message"), str), raw[:300]


CHECK = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@CHECK
@given(path=st.sampled_from(sorted(TRANSIT)), data=st.data(), method=st.sampled_from(["POST", "PUT"]))
def test_transit(path, data, method):
    body = data.draw(bodies(TRANSIT[path]))
    status, raw = http(method, f"/v1/transit/{path}", body, {"X-Vault-Token": TOKEN})
    transit_shape(status, raw)


@CHECK
@given(op=st.sampled_from(sorted(KMS)), data=st.data())
def test_kms(op, data):
    body = data.draw(bodies(KMS[op]))
    status, raw = signed(op, body)
    kms_shape(status, raw)


def signed(op, body):
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=ADDR + "/", data=body,
        headers={"X-Amz-Target": f"TrentService.{op}", "Content-Type": "application/x-amz-json-1.1"},
    )
    creds = botocore.credentials.Credentials(KEY["access_key_id"], KEY["secret_access_key"])
    botocore.auth.SigV4Auth(creds, "kms", "eu-west-1").add_auth(req)
    return http("POST", "/", body, dict(req.headers.items()))


if __name__ == "__main__":
    # The credentials work: what follows is refused for its content, not for them.
    status, raw = http("POST", "/v1/transit/encrypt/fz-aes", b'{"plaintext":"aGk="}', {"X-Vault-Token": TOKEN})
    assert status == 200, (status, raw)
    status, raw = signed("Encrypt", b'{"KeyId":"fz-aes","Plaintext":"aGk="}')
    assert status == 200, (status, raw)
    test_transit()
    assert 200 in SEEN["transit"] and 400 in SEEN["transit"], SEEN
    print(f"transit: {EXAMPLES} hostile bodies, every answer in Transit's shape, no 5xx (statuses {sorted(SEEN['transit'])})")
    test_kms()
    assert 200 in SEEN["kms"] and 400 in SEEN["kms"], SEEN
    print(f"aws kms: {EXAMPLES} hostile signed bodies, every answer in AWS's shape, no 5xx (statuses {sorted(SEEN['kms'])})")
