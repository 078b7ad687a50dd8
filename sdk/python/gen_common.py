"""What both generators (gen_aio.py, gen_operations.py) do with their output:
write it, or with --check fail when the committed file differs."""

import sys
from pathlib import Path


def write_or_check(out: Path, text: str, script: str) -> int:
    """Writes `text` to `out`; with `--check` on the command line, returns 1
    (saying how to regenerate) when `out` is missing or differs instead."""
    if "--check" in sys.argv:
        if not out.exists() or out.read_text() != text:
            print(f"{out} is stale: run python3 sdk/python/{script}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    return 0
