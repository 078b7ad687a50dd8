#!/usr/bin/env bash
# Streaming seal/unseal of a 1 GiB file with the release CLI, next to `cat` of the
# same bytes in the same run. Prints each run, then medians and ratios. Every timed
# command starts after `sync`, so no run pays for the previous one's writeback.
# Usage: scripts/bench_stream.sh [RUNS]   (default 5; needs ~4 GiB free in $TMPDIR)
set -euo pipefail
runs=${1:-5}
cd "$(dirname "$0")/.."
cargo build --release -q -p fleetkey
fk=$PWD/target/release/fleetkey
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
"$fk" keygen -o k.fk 2>/dev/null
head -c 1073741824 /dev/urandom > in.bin
sync
t() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
: > results
for i in $(seq "$runs"); do
  rm -f out.fk back.bin cat.bin; sync
  read -r s sm < <(t "$fk" seal --key k.fk -i in.bin -o out.fk)
  sync
  read -r c _ < <(t sh -c 'cat in.bin > cat.bin')
  rm -f cat.bin; sync
  read -r u um < <(t "$fk" unseal --key k.fk -i out.fk -o back.bin)
  cmp -s in.bin back.bin || { echo "round trip mismatch"; exit 1; }
  echo "run $i: seal ${s}s (${sm} KB RSS), cat ${c}s, unseal ${u}s (${um} KB RSS)"
  echo "$s $c $u $sm $um" >> results
done
python3 - <<'PY'
import statistics
rows=[list(map(float,l.split())) for l in open("results")]
med=lambda i: statistics.median(r[i] for r in rows)
gib=1073741824
s,c,u=med(0),med(1),med(2)
print(f"median seal   {s:.2f} s = {gib/s/1e9:.2f} GB/s, peak RSS max {max(r[3] for r in rows)/1024:.1f} MiB")
print(f"median unseal {u:.2f} s = {gib/u/1e9:.2f} GB/s, peak RSS max {max(r[4] for r in rows)/1024:.1f} MiB")
print(f"median cat    {c:.2f} s = {gib/c/1e9:.2f} GB/s")
print(f"seal/cat throughput ratio {c/s:.2f}, unseal/cat {c/u:.2f}")
PY
