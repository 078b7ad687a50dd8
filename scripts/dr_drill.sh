#!/usr/bin/env bash
# The disaster-recovery drill (docs/runbooks/disaster-recovery.md): a fleet of
# simulated devices on a real `fleetkey serve` with scheduled backups; the host
# and its key-encryption key are destroyed; the service is recovered on a new
# directory from the newest off-host backup plus 3 of 5 escrow shares. Proves
# every envelope opens, every device reconnects and the audit chain verifies,
# and prints the measured RTO and RPO. Run yearly by operators (with their own
# backup and shares: docs/runbooks/disaster-recovery.md), in every CI run here.
#
#   scripts/dr_drill.sh                 # builds what it needs (release)
#   FLEETKEY_BIN=path/to/fleetkey DR_DEVICES=50 DR_REPORT=dr.txt scripts/dr_drill.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fk="${FLEETKEY_BIN:-target/release/fleetkey}"
if [ ! -x "$fk" ]; then cargo build --release -p fleetkey; fi
cargo build --release -q -p fleetkey --example dr_drill
target/release/examples/dr_drill --fleetkey "$fk" --devices "${DR_DEVICES:-20}" | tee "${DR_REPORT:-/dev/null}"
