#!/usr/bin/env python3
"""Writes python/fleetkey/_api.py from the OpenAPI document: one method per
operation (its operationId), path parameters positional, query parameters as
keywords, the JSON body as `body`.

The document is sdk/typescript/openapi.json, which a Rust test keeps equal to
what `fleetkey serve` serves at /v1/openapi.json. `--check` fails when the
committed file is stale (run by the SDK's tests).
"""

from __future__ import annotations

import json
import keyword
import pathlib
import sys

from gen_common import write_or_check

HERE = pathlib.Path(__file__).resolve().parent
DOC = HERE.parent / "typescript" / "openapi.json"
OUT = HERE / "python" / "fleetkey" / "_api.py"

TYPES = {"integer": "int", "string": "str", "boolean": "bool", "number": "float"}


def py_name(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) else name


def py_type(schema: dict) -> str:
    t = schema.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return TYPES.get(t, "Any")


def first_line(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def method(op_id: str, verb: str, path: str, op: dict) -> str:
    params = op.get("parameters") or []
    path_params = [p for p in params if p["in"] == "path"]
    query_params = [p for p in params if p["in"] == "query"]
    body = op.get("requestBody")
    args = ["self"] + [f"{py_name(p['name'])}: {py_type(p['schema'])}" for p in path_params]
    if body is not None or query_params:
        args.append("*")
    if body is not None:
        args.append("body: Mapping[str, Any]" if body.get("required") else "body: Mapping[str, Any] | None = None")
    for p in query_params:
        args.append(f"{py_name(p['name'])}: {py_type(p['schema'])} | None = None")
    summary = first_line(op.get("summary") or op.get("description") or op_id)
    path_map = ", ".join(f'"{p["name"]}": {py_name(p["name"])}' for p in path_params)
    query_map = ", ".join(f'"{p["name"]}": {py_name(p["name"])}' for p in query_params)
    body_arg = "body" if body is not None else "None"
    sig = ", ".join(args)
    return (
        f"    def {py_name(op_id)}({sig}) -> R:\n"
        f'        """{summary.replace(chr(92), chr(92) * 2).replace(chr(34) * 3, "")}\n\n'
        f"        ``{verb.upper()} {path}``\n"
        f'        """\n'
        f'        return self._dispatch("{op_id}", {{{path_map}}}, {{{query_map}}}, {body_arg})\n'
    )


def render() -> str:
    doc = json.loads(DOC.read_text())
    ops = []
    for path, verbs in doc["paths"].items():
        for verb, op in verbs.items():
            if isinstance(op, dict) and op.get("operationId"):
                ops.append((op["operationId"], verb, path, op))
    ops.sort()
    table = "\n".join(f'    "{o}": ("{v.upper()}", "{p}"),' for o, v, p, _ in ops)
    methods = "\n".join(method(*o) for o in ops)
    return f'''# Generated from sdk/typescript/openapi.json by sdk/python/gen_operations.py; do not edit.
"""Every operation of the fleetkey API by its operationId, JSON in and out."""

from __future__ import annotations

from typing import Any, Callable, Generic, Mapping, Optional, TypeVar

R = TypeVar("R")

#: operationId -> (HTTP method, path template)
OPERATIONS: dict[str, tuple[str, str]] = {{
{table}
}}

Dispatch = Callable[[str, Mapping[str, Any], Mapping[str, Any], Optional[Mapping[str, Any]]], R]


class Api(Generic[R]):
    """Every operation of ``/v1/openapi.json``, named by its operationId.

    Path parameters are positional, query parameters keywords (``None`` leaves one
    out), a JSON body is ``body``. Answers are the decoded JSON (``None`` for 204).
    On :class:`fleetkey.FleetKey` a call returns the answer; on
    :class:`fleetkey.AsyncFleetKey` it returns an awaitable.
    """

    def __init__(self, dispatch: Dispatch[R]) -> None:
        self._dispatch = dispatch

{methods}'''


def main() -> int:
    return write_or_check(OUT, render(), "gen_operations.py")


if __name__ == "__main__":
    sys.exit(main())
