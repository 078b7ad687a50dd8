#!/usr/bin/env python3
"""Prints the envelope-vs-raw table for docs/benchmarks.md from criterion's output.

Run `cargo bench -p fleetkey-crypto --bench envelope` first. Reads the median of
each benchmark (target/criterion/<group>/<id>/new/estimates.json) and prints the
envelope/raw throughput ratio measured in the same run (1.00 = as fast as raw).
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


def median_ns(*parts):
    p = os.path.join(root, *parts, "new", "estimates.json")
    return json.load(open(p))["median"]["point_estimate"]


def fmt_rate(nbytes, ns):
    gbps = nbytes / ns  # bytes per ns == GB/s
    return "%.2f GB/s" % gbps if gbps >= 0.1 else "%.0f MB/s" % (gbps * 1000)


print("| op | algorithm | size | raw median | envelope median | envelope/raw throughput |")
print("|---|---|---|---|---|---|")
for op in ["seal", "open"]:
    for alg in ["aes-256-gcm", "chacha20-poly1305", "aes-256-gcm-siv"]:
        for size in [64, 1024, 65536, 1048576]:
            try:
                raw = median_ns("%s_%s" % (op, alg), "raw", str(size))
                env = median_ns("%s_%s" % (op, alg), "envelope", str(size))
            except FileNotFoundError:
                continue
            print("| %s | %s | %d | %.0f ns (%s) | %.0f ns (%s) | %.3f |" % (
                op, alg, size, raw, fmt_rate(size, raw), env, fmt_rate(size, env), raw / env))
try:
    raw = median_ns("stream_aes-256-gcm", "raw-64KiB-chunks_16MiB")
    env = median_ns("stream_aes-256-gcm", "envelope_16MiB")
    n = 16 * 1024 * 1024
    print()
    print("| stream seal 16 MiB in memory | raw 64 KiB chunks | envelope (mode 2) | envelope/raw |")
    print("|---|---|---|---|")
    print("| aes-256-gcm | %s | %s | %.3f |" % (fmt_rate(n, raw), fmt_rate(n, env), raw / env))
except FileNotFoundError:
    pass
try:
    s = median_ns("hpke-xwing", "seal (encapsulate + export)")
    o = median_ns("hpke-xwing", "open (decapsulate + export)")
    print()
    print("| HPKE X-Wing | median per operation |")
    print("|---|---|")
    print("| seal (encapsulate + export) | %.1f µs |" % (s / 1000))
    print("| open (decapsulate + export) | %.1f µs |" % (o / 1000))
except FileNotFoundError:
    pass
