#!/usr/bin/env bash
# HTTP load test of `fleetkey serve` (release build) with oha on the same machine.
# Prints: healthz baseline, seal 64 B max throughput, p99 at a fixed 10,000 req/s,
# batch seal items/s, idle and loaded RSS. Usage: scripts/bench_http.sh [SECONDS]
set -euo pipefail
secs=${1:-10}
cd "$(dirname "$0")/.."
command -v oha >/dev/null || cargo install --locked oha
cargo build --release -q -p fleetkey
fk=$PWD/target/release/fleetkey
dir=$(mktemp -d)
port=18499
cd "$dir"
HOME="$dir/home" FLEETKEY_LISTEN="127.0.0.1:$port" FLEETKEY_LOG_FORMAT=json \
  FLEETKEY_RATE_LIMIT_PER_TOKEN=100000000 FLEETKEY_RATE_LIMIT_GLOBAL=100000000 \
  "$fk" serve > serve.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
tok=$(cat fleetkey-data/admin.token)
url=http://127.0.0.1:$port
curl -fs -X POST "$url/v1/keyrings" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
  -d '{"name":"bench","policy":{"max_uses":1099511627776}}' > /dev/null
sleep 1
echo "idle RSS: $(ps -o rss= -p $pid) KB"
pt=$(head -c 64 /dev/zero | base64 -w0)
body="{\"plaintext\":\"$pt\"}"
python3 -c "
import json,base64
print(json.dumps({'items':[{'plaintext':base64.b64encode(bytes(64)).decode()}]*1000}))" > batch.json
summary() { python3 -c '
import json,sys
d=json.load(sys.stdin); s=d["summary"]; l=d.get("latencyPercentiles",{})
codes=d.get("statusCodeDistribution",{})
print("  rps %.0f  success %.4f  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  status %s" % (s["requestsPerSec"], s["successRate"], l.get("p50",0)*1000, l.get("p99",0)*1000, l.get("p99.9",0)*1000, codes))'; }
echo "healthz (HTTP stack baseline), 64 connections, ${secs}s:"
oha -z "${secs}s" -c 64 --no-tui --output-format json "$url/healthz" | summary
echo "seal 64 B, 64 connections, ${secs}s:"
oha -z "${secs}s" -c 64 --no-tui --output-format json -m POST -H "Authorization: Bearer $tok" \
  -H 'Content-Type: application/json' -d "$body" "$url/v1/keyrings/bench/seal" | summary
echo "seal 64 B at a fixed 10,000 req/s, 32 connections, ${secs}s:"
oha -z "${secs}s" -c 32 -q 10000 --no-tui --output-format json -m POST -H "Authorization: Bearer $tok" \
  -H 'Content-Type: application/json' -d "$body" "$url/v1/keyrings/bench/seal" | summary
echo "batch seal, 1000 items of 64 B per request, 8 connections, ${secs}s (items/s = rps x 1000):"
oha -z "${secs}s" -c 8 --no-tui --output-format json -m POST -H "Authorization: Bearer $tok" \
  -H 'Content-Type: application/json' -D batch.json "$url/v1/keyrings/bench/seal/batch" | summary
echo "RSS after load: $(ps -o rss= -p $pid) KB"
