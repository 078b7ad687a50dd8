#!/usr/bin/env python3
"""Writes python/fleetkey/aio.py (the asyncio client) from client.py (the sync
one), so the two have one source: every method is the same plan from _core.py,
awaited. `--check` fails when the committed aio.py is stale (run by the tests).
"""

from __future__ import annotations

import pathlib
import re
import sys

from gen_common import write_or_check

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE / "python" / "fleetkey" / "client.py"
OUT = HERE / "python" / "fleetkey" / "aio.py"

DOC = '''"""The asyncio client (``fleetkey.AsyncFleetKey``): the methods of
``fleetkey.FleetKey``, awaited. Sealing and opening files runs in a worker thread
(the native code releases the GIL), so the event loop keeps running.

Generated from client.py by sdk/python/gen_aio.py; do not edit."""'''

# (old, new) replacements, applied in order; each must match.
EXACT = [
    ('"""The synchronous client (``fleetkey.FleetKey``); ``fleetkey.aio`` has the same\nmethods for asyncio."""', DOC),
    ("import time\n", "import asyncio\n"),
    ("from typing import Any, Iterator,", "from typing import Any, AsyncIterator,"),
    ("from .envelope import aad_of\n", "from .client import _wrapped\nfrom .envelope import aad_of\n"),
    ("class FleetKey:", "class AsyncFleetKey:"),
    ('"""The fleetkey REST API, synchronously.', '"""The fleetkey REST API, for asyncio.'),
    ("http: Optional[httpx.Client]", "http: Optional[httpx.AsyncClient]"),
    ("httpx.Client(timeout", "httpx.AsyncClient(timeout"),
    ("#: Every operation of the API by its operationId.", "#: Every operation of the API by its operationId (each returns an awaitable)."),
    ('return f"FleetKey(', 'return f"AsyncFleetKey('),
    (
        '    def __enter__(self) -> "FleetKey":\n        return self\n\n    def __exit__(self, *exc: object) -> None:\n        self.close()\n\n    def close(self) -> None:',
        '    async def __aenter__(self) -> "AsyncFleetKey":\n        return self\n\n    async def __aexit__(self, *exc: object) -> None:\n        await self.aclose()\n\n    async def aclose(self) -> None:',
    ),
    ("            self._http.close()", "            await self._http.aclose()"),
    ("return plan.finish(self._dispatch(", "return plan.finish(await self._dispatch("),
    ("r = self._http.request(", "r = await self._http.request("),
    ("time.sleep(delay)", "await asyncio.sleep(delay)"),
    ("-> Iterator[Any]:", "-> AsyncIterator[Any]:"),
    ("items, after = self._run(", "items, after = await self._run("),
    ("            yield from items\n", "            for item in items:\n                yield item\n"),
    ("header = _native.read_header_file(os.fspath(src))", "header = await asyncio.to_thread(_native.read_header_file, os.fspath(src))"),
    ("return _native.seal_wrapped_file(", "return await asyncio.to_thread(_native.seal_wrapped_file, "),
    ("return _native.open_wrapped_file(", "return await asyncio.to_thread(_native.open_wrapped_file, "),
    ('__all__ = ["FleetKey", "FleetKeyError"]', '__all__ = ["AsyncFleetKey", "FleetKeyError"]'),
]
# (pattern, replacement) applied everywhere.
EVERYWHERE = [
    (r"\n    def (?!__|_pages|devices|fleets|audit|addr)(\w+)\(", r"\n    async def \1("),
    (r"return self\._run\(", "return await self._run("),
    (r"return self\._dispatch\(", "return await self._dispatch("),
    (r"= self\.(data_key|unseal)\(", r"= await self.\1("),
    (r"-> Iterator\[", "-> AsyncIterator["),
    (r"\n    def _pages\(", "\n    async def _pages("),
]


def render() -> str:
    text = SRC.read_text()
    for old, new in EXACT:
        if old not in text:
            raise SystemExit(f"gen_aio.py: client.py no longer has {old[:60]!r}")
        text = text.replace(old, new)
    for pattern, new in EVERYWHERE:
        text = re.sub(pattern, new, text)
    # _wrapped is client.py's; aio.py imports it.
    text = re.sub(r"\n\ndef _wrapped\(.*?\n(?=\n\n__all__)", "", text, flags=re.S)
    return text


def main() -> int:
    return write_or_check(OUT, render(), "gen_aio.py")


if __name__ == "__main__":
    sys.exit(main())
