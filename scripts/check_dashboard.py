#!/usr/bin/env python3
"""Checks deploy/grafana/fleetkey.json: every panel query is valid PromQL (each is
written into a rules file as a recording rule and `promtool check rules` parses
it, with Grafana's variables replaced by what they expand to), and every metric a
query or an alert rule (deploy/prometheus/alerts.yml) names is one fleetkey (or
the process collector) exports, as listed in docs/operations.md. Run by .ci/run.

    python3 scripts/check_dashboard.py deploy/grafana/fleetkey.json
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def queries(dashboard: dict) -> list[tuple[str, str]]:
    out = []

    def walk(panels: list) -> None:
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(dashboard["panels"])
    for v in dashboard.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict) and "label_values" not in q.get("query", ""):
            out.append((f"variable {v['name']}", q["query"]))
    return out


def expand(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace('"$instance"', '".*"')
    )


def documented_metrics() -> set[str]:
    text = (ROOT / "docs/operations.md").read_text()
    names = set(re.findall(r"`((?:fleetkey|process)_[a-z_]+)`", text))
    # Histograms are listed by name; their series add these suffixes.
    for n in list(names):
        names |= {n + "_bucket", n + "_count", n + "_sum"}
    return names | {"up"}


def main() -> int:
    path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "deploy/grafana/fleetkey.json")
    dashboard = json.loads(path.read_text())
    qs = queries(dashboard)
    if not qs:
        print("no queries found", file=sys.stderr)
        return 1
    known = documented_metrics()
    unknown = []
    # The alert rules name documented metrics only, too.
    alerts = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    for name in re.findall(r"\b((?:fleetkey|process)_[a-z_]+)\b", alerts):
        if name not in known:
            unknown.append(f"alerts.yml: {name}")
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (title, expr) in enumerate(qs):
        e = expand(expr)
        for name in re.findall(r"\b((?:fleetkey|process)_[a-z_]+)\b", e):
            if name not in known:
                unknown.append(f"{title}: {name}")
        rules.append(f"      - record: dashboard:query_{i}")
        rules.append(f"        expr: {json.dumps(e)}")
    if unknown:
        print("metrics not in docs/operations.md:\n  " + "\n  ".join(unknown), file=sys.stderr)
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(rules) + "\n")
    r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    pathlib.Path(f.name).unlink()
    if r.returncode != 0:
        print(r.stdout + r.stderr, file=sys.stderr)
        return 1
    print(f"{path}: {len(qs)} queries parse (promtool) and name documented metrics only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
