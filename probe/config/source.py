"""Reading a config file into a JSON object, with one clear line for every way that can fail.

Everything here happens before the YANG model is involved, so the messages speak of files and
JSON syntax rather than of schema paths. Two bounds come first, because what follows is neither
free nor robust on hostile input: json's C scanner recurses once per nesting level (a thousand
``[`` end in RecursionError) and yangson's validation costs up to a millisecond per list entry.
A real config is a few kilobytes and at most nine levels deep (``ipfix/cache[]/timeoutCache/
cacheLayout/cacheField[]/isFlowKey[]`` in RFC 7951 form), so both bounds are far above that.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from probe.errors import UserError

# 256 KiB: ~80 times the sample configs, room for 90 caches of every IE the meter fills, and
# yangson validates a config of that size in under 2 s on the 2-core development machine.
MAX_CONFIG_BYTES = 256 << 10
_LIMIT = f"{MAX_CONFIG_BYTES} bytes ({MAX_CONFIG_BYTES >> 10} KiB)"
MAX_DEPTH = 32  # JSON nesting levels (objects and arrays)

# A JSON string (its escapes skipped whole) or a bracket; anything else is skipped unread.
_NESTING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


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


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    return f"line {line}, column {column}"


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before the parser recurses into it."""
    depth = 0
    for m in _NESTING.finditer(text):
        c = m.group()
        if c == "[" or c == "{":
            depth += 1
            if depth > MAX_DEPTH:
                raise UserError(f"{source}: {_where(text, m.start())}: nested more than "
                                f"{MAX_DEPTH} levels deep; a config needs at most 9")
        elif c == "]" or c == "}":
            depth -= 1


def parse_text(text: str, source: str) -> dict[str, Any]:
    """Parse JSON text that must hold one object (the ipfix container or its wrapper)."""
    if not text.strip():
        raise UserError(f"{source}: empty file; expected a JSON object")
    if len(text) > MAX_CONFIG_BYTES:
        raise UserError(f"{source}: {len(text)} characters; a config may hold at most "
                        f"{_LIMIT}")
    _check_depth(text, source)
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
    try:
        with Path(path).open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                raise UserError(f"{name}: {size} bytes; a config may hold at most {_LIMIT}")
            data = f.read(MAX_CONFIG_BYTES + 1)  # a pipe or /dev/zero: no size to stat
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a directory, not a config file") from None
    except PermissionError:
        raise UserError(f"{name}: cannot read: permission denied") from None
    except OSError as exc:
        raise UserError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UserError(f"{name}: more than {_LIMIT}, the most a config may hold")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start})") from None
    return parse_text(text, name)
