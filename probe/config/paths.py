"""Config locations as users read them: ``/ipfix/cache[name='Flow cache']/timeoutCache``.

The style is YANG's instance-identifier with module prefixes dropped and the path always rooted
at ``/ipfix``, so a message reads the same whether the file was in goflowd or RFC 7951 form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ROOT = "/ipfix"


def local(member: str) -> str:
    """A member name without its module prefix."""
    return member.rpartition(":")[2]


def quote(value: Any) -> str:
    # Control characters escaped, so a message naming an entry stays on one line.
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode()
                   for c in str(value))
    return f'"{text}"' if "'" in text else f"'{text}'"


def entry_pred(entry: Any, keys: Sequence[str], index: int) -> str:
    """The predicate naming one list entry: its keys, or its 1-based position if it has none."""
    if isinstance(entry, dict) and keys and all(k in entry for k in keys):
        return "".join(f"[{local(k)}={quote(entry[k])}]" for k in keys)
    return f"[{index + 1}]"


def leaf_list_pred(value: Any) -> str:
    return f"[.={quote(value)}]"


def route_to_path(doc: dict[str, Any], route: Sequence[str | int]) -> str:
    """Turn a route of member names and list indices (yangson's ``InstanceNode.path``) into a
    path, reading list keys from the document itself. ``doc`` is the RFC 7951 document."""
    parts = [""]
    node: Any = doc
    for step in route:
        if isinstance(step, int):
            try:
                entry = node[step]
            except (IndexError, KeyError, TypeError):
                parts[-1] += f"[{step + 1}]"
                break
            if isinstance(entry, dict):
                parts[-1] += entry_pred(entry, ("name",) if "name" in entry else (), step)
            else:
                parts[-1] += leaf_list_pred(entry)
            node = entry
        else:
            parts.append(local(step))
            node = node.get(step) if isinstance(node, dict) else None
    return "/".join(parts) or ROOT
