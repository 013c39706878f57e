"""Reading a config file into a JSON object, with one clear line for every way that can fail.

Everything here happens before the YANG model is involved, so the messages speak of files and
JSON syntax rather than of schema paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probe.errors import UserError


class _DuplicateMember(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads silently keeps the last of two equal members; in a config that hides a typo.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateMember(key)
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_text(text: str, source: str) -> dict[str, Any]:
    """Parse JSON text that must hold one object (the ipfix container or its wrapper)."""
    if not text.strip():
        raise UserError(f"{source}: empty file; expected a JSON object")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates,
                         parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}: line {exc.lineno}, column {exc.colno}: "
                        f"not valid JSON: {exc.msg}") from None
    except _DuplicateMember as exc:
        raise UserError(f"{source}: not valid config JSON: member '{exc}' appears twice "
                        "in one object") from None
    except ValueError as exc:  # NaN / Infinity
        raise UserError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(doc), "a number")
        raise UserError(f"{source}: the top level is {kind}; expected a JSON object "
                        "(the ipfix container)")
    return doc


def read_file(path: str | Path) -> dict[str, Any]:
    """Read and parse a config file; every failure is a UserError naming the file."""
    name = str(path)
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a directory, not a config file") from None
    except PermissionError:
        raise UserError(f"{name}: cannot read: permission denied") from None
    except OSError as exc:
        raise UserError(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start})") from None
    return parse_text(text, name)
