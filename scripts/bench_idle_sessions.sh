#!/usr/bin/env bash
# Idle device sessions: server RSS with N open, idle Noise IK sessions on loopback
# (target: 100,000 sessions in <= 1 GiB). Raises the open-file limit as far as the
# machine allows first; the benchmark caps N at what one process may hold and says so.
# Usage: scripts/bench_idle_sessions.sh [SESSIONS]
set -euo pipefail
n=${1:-100000}
cd "$(dirname "$0")/.."
want=$((n + 1000))
ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "ulimit -n: $(ulimit -n) (hard $(ulimit -Hn))"
cargo build --release -q -p fleetkey
cargo bench -q -p fleetkey --bench idle_sessions -- --sessions "$n"
