"""The Python examples of docs/sdk.md run as written, in order, against a real
server (FLEETKEY_ADDR and FLEETKEY_TOKEN set, in a scratch directory)."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def examples() -> list[str]:
    text = (ROOT / "docs/sdk.md").read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_python_section_of_docs_sdk_runs(server, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    blocks = examples()
    assert len(blocks) >= 6
    monkeypatch.setenv("FLEETKEY_ADDR", server.addr)
    monkeypatch.setenv("FLEETKEY_TOKEN", server.token)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    for i, block in enumerate(blocks):
        code = block.replace('"name": "app"', '"name": "docs-app"').replace('"app"', '"docs-app"')
        code = code.replace('"name": "firmware"', '"name": "docs-firmware"').replace('"firmware"', '"docs-firmware"')
        exec(compile(code, f"docs/sdk.md python block {i + 1}", "exec"), scope)  # noqa: S102
    assert (tmp_path / "report.copy.pdf").read_bytes() == (tmp_path / "report.pdf").read_bytes()
    assert not (tmp_path / "elsewhere.pdf").exists()
