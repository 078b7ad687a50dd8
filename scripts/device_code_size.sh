#!/usr/bin/env bash
# Code size of fleetkey-device's crypto path (opt-level "z", LTO, panic=abort):
# a cdylib exporting one function that boots, derives keys and seals/opens frames,
# against the same cdylib whose function does no cryptography. Measured on the
# build machine's target (x86-64 here), not on a Cortex-M0+.
set -euo pipefail
cd "$(dirname "$0")/../crates/fleetkey-device/size"
text() { size -A "$1" | awk '$1 == ".text" { print $2 }'; }
measure() {
  local label=$1 flags=$2
  RUSTFLAGS="$flags" cargo build -q --release --target-dir "target-base-$label"
  local base with
  base=$(text "target-base-$label/release/libfleetkey_device_size.so")
  RUSTFLAGS="$flags" cargo build -q --release --features crypto --target-dir "target-crypto-$label"
  with=$(text "target-crypto-$label/release/libfleetkey_device_size.so")
  echo "$label: .text $base bytes without, $with bytes with; crypto path $((with - base)) bytes"
}
echo "target: $(rustc -vV | awk '/^host/ { print $2 }')"
# As built for x86-64: the aes and curve25519 crates add AES-NI and AVX2 code next
# to their portable code, chosen at run time.
measure x86-64-default ""
# Portable code only, as a Cortex-M0+ build gets (no AES-NI, no SIMD backends).
measure portable-only '--cfg aes_force_soft --cfg curve25519_dalek_backend="serial"'

