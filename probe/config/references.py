"""RFC 6728's links between boxes (leafrefs), checked all at once.

yangson checks leafrefs too, but stops at the first dangling one; a config that renamed a cache
usually breaks several references, and the user should see them all in one run.
"""

from __future__ import annotations

from typing import Any

from probe.config.paths import ROOT, quote

# (list holding the reference, referring member, list it names)
LINKS = (
    ("observationPoint", "selectionProcess", "selectionProcess"),
    ("selectionProcess", "cache", "cache"),
    ("cache", "exportingProcess", "exportingProcess"),
    ("collectingProcess", "exportingProcess", "exportingProcess"),
)


def _names(ipfix: dict[str, Any], member: str) -> set[str]:
    return {e.get("name") for e in ipfix.get(member, []) if isinstance(e, dict)}


def check(doc: dict[str, Any]) -> list[tuple[str, str]]:
    ipfix = next(iter(doc.values()))
    problems: list[tuple[str, str]] = []
    for holder, member, target in LINKS:
        known = _names(ipfix, target)
        for entry in ipfix.get(holder, []):
            if not isinstance(entry, dict) or member not in entry:
                continue
            base = f"{ROOT}/{holder}[name={quote(entry.get('name'))}]/{member}"
            refs = entry[member]
            for ref in refs if isinstance(refs, list) else [refs]:
                if ref not in known:
                    where = f"{base}[.={quote(ref)}]" if isinstance(refs, list) else base
                    problems.append((where, f"no {target} named {quote(ref)}"))
    return problems
