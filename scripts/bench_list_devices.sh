#!/usr/bin/env bash
# Listing every device of a 100,000-device fleet (#20), against a release
# `fleetkey serve` on an embedded store: `fleetkey devices list --all` through the
# API (pages of 1,000, JSON lines) and the same rows read straight from the SQLite
# file by the sqlite3 shell (the floor: no HTTP, no JSON), alternated A B A B.
# Prints each run and the medians; docs/benchmarks.md records a run.
#
#   scripts/bench_list_devices.sh [DEVICES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-100000}
rounds=${2:-5}
cargo build --release -q -p fleetkey
fk=$PWD/target/release/fleetkey
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 shell (Debian: sqlite3)"; exit 2; }
tmp=$(mktemp -d)
port=${BENCH_PORT:-28400}
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
(cd "$tmp" && HOME="$tmp/home" FLEETKEY_LISTEN=127.0.0.1:$port FLEETKEY_DEVICE_LISTEN=off \
  FLEETKEY_DEVICE_UDP_LISTEN=off FLEETKEY_GRPC_LISTEN=off FLEETKEY_ACCESS_LOG=false FLEETKEY_LOG_FORMAT=json \
  exec "$fk" serve 2>"$tmp/serve.log") &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
export FLEETKEY_ADDR=http://127.0.0.1:$port FLEETKEY_TOKEN
FLEETKEY_TOKEN=$(cat "$tmp/fleetkey-data/admin.token")
"$fk" fleets create big >/dev/null
start=$(date +%s.%N)
"$fk" factory provision --fleet big --count "$devices" --format json >/dev/null
echo "provisioned $devices devices in $(echo "$(date +%s.%N) - $start" | bc) s"
db="$tmp/fleetkey-data/fleetkey.db"
api() { "$fk" devices list --fleet big --all --limit 1000 --format json | wc -l; }
raw() {
  sqlite3 -readonly "$db" "SELECT id, fleet, hardware_id, state, model, profile, hex(x25519), \
    hex(ed25519), hex(birth_credential), claimed_by, created_at, last_seen FROM devices \
    WHERE fleet = 'big' ORDER BY id" | wc -l
}
run() { local s e n; s=$(date +%s%N); n=$("$1"); e=$(date +%s%N); echo "$(( (e - s) / 1000000 )) $n"; }
declare -a A B
for r in $(seq "$rounds"); do
  read -r ta na < <(run api); read -r tb nb < <(run raw)
  [ "$na" = "$devices" ] && [ "$nb" = "$devices" ] || { echo "listed $na / $nb of $devices"; exit 1; }
  A+=("$ta"); B+=("$tb")
  echo "round $r: devices list --all ${ta} ms, sqlite3 ${tb} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ma=$(median "${A[@]}"); mb=$(median "${B[@]}")
echo "median: devices list --all ${ma} ms ($(( devices * 1000 / ma )) devices/s), sqlite3 ${mb} ms; ratio $(echo "scale=2; $ma / $mb" | bc)x"
