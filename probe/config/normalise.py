"""goflowd form or RFC 7951 in, RFC 7951 out, checking every member against the schema.

goflowd writes the inside of the ``ipfix`` container with no module prefixes, augment leaves
included, and numbers where RFC 7951 wants strings (64-bit integers, decimal64). This walk puts
the prefixes where RFC 7951 needs them and turns those numbers into strings, and on the way
reports every unknown member, unsupported feature and badly typed value, so a user sees all
such mistakes at once rather than yangson's first one.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Any

from yangson.datatype import (
    DataType,
    Decimal64Type,
    EnumerationType,
    IdentityrefType,
    Int64Type,
    LeafrefType,
    Uint64Type,
    UnionType,
)
from yangson.schemanode import (
    ChoiceNode,
    ContainerNode,
    DataNode,
    InternalNode,
    LeafListNode,
    LeafNode,
    ListNode,
    SchemaNode,
)

from probe.config.paths import ROOT, entry_pred, leaf_list_pred, local, quote
from probe.config.schema import (
    FLOWPROBE_MODULE,
    IPFIX_MODULE,
    ROOT_MEMBER,
    data_model,
    ipfix_node,
)
from probe.ie import METERED

# RFC 6728 parts flowprobe does not implement, and what to use instead. Some are features left
# out of yang-library.json (so yangson would call them unknown), SCTP has no feature at all.
_NO_SCTP = ("this machine's kernel has no SCTP (its sockets fail with EPROTONOSUPPORT), so "
            "flowprobe's SCTP could not be tested")
UNSUPPORTED = {
    "sctpExporter": f"SCTP export is not supported: {_NO_SCTP}; use udpExporter or tcpExporter",
    "sctpCollector": f"SCTP collection is not supported: {_NO_SCTP}; use udpCollector or "
                     "tcpCollector",
    "ifIndex": "interfaces are named with ifName, not ifIndex",
    "entPhysicalName": "line cards are not supported; use ifName or flowprobe:offlineFile",
    "entPhysicalIndex": "line cards are not supported; use ifName or flowprobe:offlineFile",
}

# Leaves of RFC 6728's flowCacheParameters, which every cache type but immediateCache has.
_FLOW_CACHE_LEAVES = frozenset({"maxFlows", "activeTimeout", "idleTimeout", "exportInterval"})

# Entries a list or leaf-list may hold. yangson walks a list with a zipper that copies the
# entries before and after the current one at every step, and a ``when`` on a list entry's
# member (isFlowKey's) zips the whole list back up: each entry costs time in proportion to the
# length of its list, so an unbounded list makes validation quadratic (16,000 cache fields
# took 6 s, 140,000 took 7 minutes). Bounded lists keep it linear in the size of the file.
MAX_ENTRIES = 1024
# A cache layout names each IE the meter fills at most once (semantic.py refuses repeats).
MAX_CACHE_FIELDS = len(METERED)

Problems = list[tuple[str, str]]  # (path, what is wrong)


def split_form(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, str, Problems]:
    """Find the ipfix container: RFC 7951 wraps it, goflowd gives its inside."""
    if ROOT_MEMBER in doc or "ipfix" in doc:
        key = ROOT_MEMBER if ROOT_MEMBER in doc else "ipfix"
        form = "rfc7951" if key == ROOT_MEMBER else "goflowd"
        others = [k for k in doc if k != key]
        problems: Problems = [(ROOT, f"unknown top-level member '{k}'") for k in others]
        body = doc[key]
        if not isinstance(body, dict):
            problems.append((ROOT, f"expected a JSON object, got {describe(body)}"))
            return None, form, problems
        return body, form, problems
    return doc, "goflowd", []


def to_rfc7951(doc: dict[str, Any]) -> tuple[dict[str, Any], str, Problems]:
    """Return the RFC 7951 document, the input's form and the problems found."""
    body, form, problems = split_form(doc)
    if body is None:
        return {ROOT_MEMBER: {}}, form, problems
    walker = _Walker()
    out = walker.container(body, ipfix_node(), ROOT)
    return {ROOT_MEMBER: out}, form, problems + walker.problems


def describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return json.dumps(value)


def type_name(t: DataType) -> str:
    if isinstance(t, LeafrefType):
        return type_name(t.ref_type)
    if isinstance(t, IdentityrefType) and t.bases:
        return t.bases[0][0]
    if t.name:
        return t.name if isinstance(t.name, str) else t.name[0]
    return t.yang_type()


def _coerce(t: DataType, value: Any) -> Any:
    """RFC 7951 encodes 64-bit integers and decimal64 as strings; goflowd writes numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(t, LeafrefType):
        return _coerce(t.ref_type, value)
    if isinstance(t, Int64Type | Uint64Type) and isinstance(value, int):
        return str(value)
    if isinstance(t, Decimal64Type):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(t, UnionType):
        for member in t.types:
            coerced = _coerce(member, value)
            if coerced is not value:
                return coerced
    return value


def check_value(t: DataType, value: Any) -> tuple[Any, str | None]:
    """The value as RFC 7951 wants it, and what is wrong with it (None: nothing)."""
    shown = describe(value)
    value = _coerce(t, value)
    cooked = t.from_raw(value)
    if cooked is None:
        if type_name(t) == "empty":
            return value, f"{shown} is not an empty leaf value; write [null]"
        return value, f"{shown} is {_a(type_name(t))}{_choices_of(t)}"
    if isinstance(t, LeafrefType):
        return value, None  # the target's existence is checked by yangson
    if cooked not in t:
        msg = t.error_message or ""
        rng = getattr(t, "range", None)
        if msg == "not in range" and rng is not None:
            bounds = " | ".join("..".join(str(t.canonical_string(b)) for b in r)
                                for r in rng.intervals)
            return value, f"{shown} is out of range ({bounds})"
        if type_name(t) == "nameType":
            return value, (f"{shown} is not a valid name (not empty, no leading or trailing "
                           "white space)")
        if "length" in msg:
            return value, f"{shown} has an invalid length for {type_name(t)}"
        if "pattern" in msg:
            return value, f"{shown} is not a valid {type_name(t)} (pattern not matched)"
        return value, f"{shown} is {_a(type_name(t))}{_choices_of(t)}"
    if isinstance(t, Decimal64Type | Int64Type | Uint64Type):
        value = t.to_raw(cooked)  # canonical: "1e-3" and 0.001 both become "0.001"
    return value, None


def _a(name: str) -> str:
    return f"not an {name}" if name[:1] in "aeio" else f"not a {name}"


def _choices_of(t: DataType) -> str:
    if isinstance(t, EnumerationType):
        return f"; expected one of {', '.join(t.enum)}"
    if isinstance(t, IdentityrefType):
        names = sorted(q[0] for q in data_model().schema_data.derived_from_all(t.bases))
        return f"; expected one of {', '.join(names)}"
    return ""


def _all_data_children(node: InternalNode) -> list[DataNode]:
    return [c for c in node.data_children() if c.config]


def _case_members(case: SchemaNode) -> list[DataNode]:
    if isinstance(case, InternalNode) and not isinstance(case, DataNode):
        return case.data_children()
    return [case] if isinstance(case, DataNode) else []


def _choices(node: InternalNode) -> list[ChoiceNode]:
    return [c for c in node.children if isinstance(c, ChoiceNode)]


class _Walker:
    def __init__(self) -> None:
        self.problems: Problems = []

    def err(self, path: str, msg: str) -> None:
        self.problems.append((path, msg))

    def _find(self, node: InternalNode, member: str) -> DataNode | None:
        prefix, _, name = member.rpartition(":")
        if prefix:
            return node.get_data_child(name, prefix)
        # goflowd leaves augment members unprefixed
        return node.get_data_child(name, node.ns) or node.get_data_child(name, FLOWPROBE_MODULE)

    def container(self, obj: dict[str, Any], node: InternalNode, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for member, value in obj.items():
            name = local(member)
            mpath = f"{path}/{name}"
            standard = member.rpartition(":")[0] in ("", IPFIX_MODULE)
            if standard and name in ("ifIndex", "ifName") and node.name.endswith("Exporter"):
                self.err(mpath, "choosing the outgoing interface is not supported")
                continue
            if standard and name in UNSUPPORTED:
                self.err(mpath, UNSUPPORTED[name])
                continue
            if standard and name == "transportLayerSecurity" and node.name.startswith("udp"):
                self.err(mpath, "DTLS (TLS over UDP, what transportLayerSecurity means on a "
                                f"{node.name}) is not supported: Python's ssl module has no "
                                "DTLS; use a tcp" + node.name[3:] + " with transportLayerSecurity")
                continue
            child = self._find(node, member)
            if child is None:
                self.err(mpath, self._unknown(node, member))
                continue
            if not child.config:
                self.err(mpath, f"'{name}' is state data the probe reports, not configuration")
                continue
            iname = child.iname()
            if iname in out:
                self.err(mpath, "given twice (with and without its module prefix)")
                continue
            out[iname] = self.value(value, child, mpath)
        self._check_choices(out, node, path)
        return out

    def _unknown(self, node: InternalNode, member: str) -> str:
        if node.name == "immediateCache" and local(member) in _FLOW_CACHE_LEAVES:
            return (f"an immediateCache exports each packet at once and keeps no flows, so it "
                    f"has no {local(member)}")
        known = sorted({c.name for c in _all_data_children(node)})
        close = difflib.get_close_matches(local(member), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown member '{member}'{hint}"

    def _check_choices(self, out: dict[str, Any], node: InternalNode, path: str) -> None:
        # yangson reports a second case as "member-not-allowed" and crashes on a missing
        # mandatory choice in a list entry (1.7.9), so choices are checked here.
        for choice in _choices(node):
            cases = [[local(c.iname()) for c in _case_members(case)] for case in choice.children]
            given = {local(k) for k in out}
            taken = [hits[0] for names in cases if (hits := [n for n in names if n in given])]
            if len(taken) > 1:
                self.err(path, f"{' and '.join(taken)} are alternatives (choice "
                               f"{choice.name}); give only one")
            elif not taken and choice.mandatory:
                options = [n for names in cases for n in names]
                self.err(path, f"missing {choice.name}: needs one of {', '.join(options)}")

    def value(self, value: Any, node: DataNode, path: str) -> Any:
        if isinstance(value, list) and not self._few_enough(value, node, path):
            return value  # not walked: the problem is reported and validation stops here
        if isinstance(node, ListNode):
            out = self._sequence(value, path, lambda e, i: self._entry(e, i, node, path))
            self._unique(out, path, lambda e: tuple(
                json.dumps(e.get(k[0])) for k in node.keys) if isinstance(e, dict) else None)
            return out
        if isinstance(node, LeafListNode):
            out = self._sequence(value, path, lambda e, _i: self._leaf(
                e, node, f"{path}{leaf_list_pred(e)}"))
            self._unique(out, path, json.dumps)
            return out
        if isinstance(node, ContainerNode):
            if not isinstance(value, dict):
                self.err(path, f"expected an object, got {describe(value)}")
                return value
            return self.container(value, node, path)
        if isinstance(node, LeafNode):
            return self._leaf(value, node, path)
        return value

    def _few_enough(self, items: list[Any], node: DataNode, path: str) -> bool:
        if node.name == "cacheField" and len(items) > MAX_CACHE_FIELDS:
            self.err(path, f"{len(items)} fields; a cache layout holds at most "
                           f"{MAX_CACHE_FIELDS}, each Information Element the meter fills "
                           "once")
            return False
        if len(items) > MAX_ENTRIES:
            self.err(path, f"{len(items)} entries; at most {MAX_ENTRIES} are accepted")
            return False
        return True

    def _unique(self, items: Any, path: str, key: Callable[[Any], Any]) -> None:
        """List keys and config leaf-list values must be unique (RFC 7950 §7.7, §7.8.2)."""
        if not isinstance(items, list):
            return
        seen: set[Any] = set()
        for item in items:
            k = key(item)
            if k is None or k in seen:
                if k is not None and isinstance(item, dict):
                    self.err(path, f"two entries named {quote(item.get('name'))}")
                elif k is not None:
                    self.err(path, f"{quote(item)} appears twice")
                continue
            seen.add(k)

    def _sequence(self, value: Any, path: str, each: Callable[[Any, int], Any]) -> Any:
        if not isinstance(value, list):
            self.err(path, f"expected an array, got {describe(value)}")
            return value
        return [each(e, i) for i, e in enumerate(value)]

    def _entry(self, entry: Any, index: int, node: ListNode, path: str) -> Any:
        keys = [k[0] for k in node.keys]
        epath = f"{path}{entry_pred(entry, keys, index)}"
        if not isinstance(entry, dict):
            self.err(epath, f"expected an object, got {describe(entry)}")
            return entry
        for k in keys:
            if k not in entry:
                self.err(epath, f"missing key '{k}'")
        return self.container(entry, node, epath)

    def _leaf(self, value: Any, node: LeafNode | LeafListNode, path: str) -> Any:
        out, problem = check_value(node.type, value)
        if problem:
            self.err(path, problem)
        return out
