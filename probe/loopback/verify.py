"""``replay --verify``: every record the collector decoded equals the record the cache expired.

Each decoded record is read back in the names of the cache layout it was exported with: the
IE value itself when the message carried it, otherwise what the protocol carries instead
(NetFlow v5 has sysUptime-relative times and no IP version or ICMP field for non-ICMP flows,
so those come from ``time_flow_*_ns``, the Ethernet type and the protocol). A field neither
carried nor derivable counts as a difference. The comparison is of multisets: a record missing,
one extra, or one with any field different fails.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from probe.collect import Record
from probe.export.process import V5_UPTIME_WRAP_US
from probe.loopback.loop import Expected
from probe.output import value_text

_MISSING = "<not in the decoded record>"
_TIME_UNITS = {"Seconds": 1_000_000_000, "Milliseconds": 1_000_000, "Microseconds": 1000,
               "Nanoseconds": 1}
_ETYPE_VERSION = {0x0800: 4, 0x86DD: 6}
_ICMP = {"icmpTypeCodeIPv4": 1, "icmpTypeIPv4": 1, "icmpCodeIPv4": 1,
         "icmpTypeCodeIPv6": 58, "icmpTypeIPv6": 58, "icmpCodeIPv6": 58}

Layout = tuple[int, tuple[str, ...]]  # (IP version, field names)


@dataclass(slots=True)
class Verdict:
    compared: int = 0  # records the protocol could carry, compared field by field
    decoded: int = 0
    not_carried: int = 0  # IPv6 records NetFlow v5 cannot carry
    too_old: int = 0  # flows NetFlow v5's sysUptime cannot place (begun 49.7 days before)
    differences: list[str] = field(default_factory=list)  # the first few, for people
    n_differences: int = 0

    @property
    def ok(self) -> bool:
        return self.n_differences == 0

    def line(self, proto: str) -> str:
        """The verdict in one line; ``proto`` names the export protocol."""
        extra = (f"; {self.not_carried} IPv6 records not compared: NetFlow v5 cannot carry them"
                 if self.not_carried else "")
        if self.too_old:
            extra += (f"; {self.too_old} records not compared: they began 49.7 days or more "
                      "before their export, which NetFlow v5's sysUptime cannot say")
        if self.ok:
            return (f"verify: OK: the {self.decoded} records decoded from {proto} equal the "
                    f"{self.compared} the cache expired, every field{extra}")
        return (f"verify: FAILED: {self.n_differences} records differ between the "
                f"{self.compared} the cache expired and the {self.decoded} decoded from "
                f"{proto}{extra}")


def _derived(name: str, flow: dict[str, object], raw: dict[str, object]) -> object:
    """What a protocol that does not carry IE ``name`` carries for it instead."""
    for edge, ns_key in (("flowStart", "time_flow_start_ns"), ("flowEnd", "time_flow_end_ns")):
        if name.startswith(edge) and name[len(edge):] in _TIME_UNITS:
            ns = flow.get(ns_key)
            return ns // _TIME_UNITS[name[len(edge):]] if isinstance(ns, int) else _MISSING
    if name == "ipVersion":
        return _ETYPE_VERSION.get(flow.get("etype"), _MISSING)  # type: ignore[arg-type]
    if name in _ICMP and raw.get("protocolIdentifier") not in (None, _ICMP[name]):
        return 0  # not an ICMP flow: the cache holds 0 and v5 has nowhere to put it
    return _MISSING


def _view(rec: Record, fields: tuple[str, ...], version: int) -> tuple[object, ...]:
    """The decoded record in the layout's field names. IPFIX and v9 templates carry every
    field of the layout, so only NetFlow v5's fixed record needs stand-ins."""
    raw = rec.raw
    if version != 5:
        return tuple(raw.get(n, _MISSING) for n in fields)
    return tuple(raw[n] if n in raw else _derived(n, rec.flow, raw) for n in fields)


def _describe(fields: tuple[str, ...], values: tuple[object, ...], keys: tuple[str, ...]) -> str:
    shown = [(n, v) for n, v in zip(fields, values, strict=True) if n in keys] or \
        list(zip(fields, values, strict=True))
    return " ".join(f"{n}={value_text(n, v)}" for n, v in shown)


def verify(expected: list[Expected], decoded: list[Record], version: int,
           *, show: int = 5) -> Verdict:
    """Compare what the caches expired with what the collector decoded (see module doc)."""
    v = Verdict(decoded=len(decoded))
    want: Counter[tuple[Layout, tuple[object, ...]]] = Counter()
    keys_of: dict[Layout, tuple[str, ...]] = {}
    for e in expected:
        if version == 5 and e.ip_version != 4:
            v.not_carried += 1
            continue
        if version == 5 and e.age_us >= V5_UPTIME_WRAP_US:
            v.too_old += 1  # the exporter counted it as not exportable
            continue
        lay = (e.ip_version, e.fields)
        keys_of.setdefault(lay, e.keys)
        want[(lay, tuple(_carried(version, n, e.row[n]) for n in e.fields))] += 1
    v.compared = sum(want.values())
    layouts = list(keys_of)
    got: Counter[tuple[Layout, tuple[object, ...]]] = Counter()
    for rec in decoded:
        ipv = _ETYPE_VERSION.get(rec.flow.get("etype"))  # type: ignore[arg-type]
        views = [(lay, _view(rec, lay[1], version)) for lay in layouts if lay[0] == ipv] or \
            [(lay, _view(rec, lay[1], version)) for lay in layouts]
        pick = next((x for x in views if want[x] > got[x]), None) or \
            next((x for x in views if _MISSING not in x[1]), None) or \
            (views[0] if views else ((0, ()), (repr(rec.raw),)))
        got[pick] += 1
    missing, extra = want - got, got - want
    v.n_differences = max(missing.total(), extra.total())
    v.differences = _explain(missing, extra, keys_of, show, version)
    return v


def _carried(version: int, name: str, value: object) -> object:
    """The value as the protocol can carry it: NetFlow v5's TCP flags field is one octet, so
    the ECN-nonce and AE bits (RFC 7125) of a cache record cannot reach the collector."""
    if version == 5 and name == "tcpControlBits" and isinstance(value, int):
        return value & 0xFF
    return value


def _wrapped(version: int, name: str, a: object, b: object) -> bool:
    """A NetFlow v5 time off by whole 2**32 ms: sysUptime wrapped between flow and export."""
    return version == 5 and name.startswith(("flowStart", "flowEnd")) and \
        name.endswith("Milliseconds") and isinstance(a, int) and isinstance(b, int) and \
        (b - a) % 2**32 == 0


def _explain(missing: Counter, extra: Counter, keys_of: dict[Layout, tuple[str, ...]],
             show: int, version: int) -> list[str]:
    """Pair a missing record with an extra one of the same flow key, naming the fields that
    differ; what does not pair is reported as missing or extra."""
    out: list[str] = []
    spare = list(extra.elements())
    for lay, values in missing.elements():
        if len(out) >= show:
            break
        fields = lay[1]
        keys = keys_of.get(lay, ())
        kidx = [i for i, n in enumerate(fields) if n in keys]
        twin = next((x for x in spare if x[0] == lay and all(x[1][i] == values[i]
                                                               for i in kidx)), None)
        flow = _describe(fields, values, keys)
        if twin is None:
            out.append(f"  missing from the collector: {flow}")
            continue
        spare.remove(twin)
        pairs = [(n, a, b) for n, a, b in zip(fields, values, twin[1], strict=True) if a != b]
        diffs = ", ".join(f"{n}: cache {value_text(n, a)}, collector {value_text(n, b)}"
                          for n, a, b in pairs)
        if any(_wrapped(version, *p) for p in pairs):
            diffs += (" (NetFlow v5 times are 32-bit milliseconds of sysUptime: this flow is "
                      "more than 49.7 days from its export)")
        out.append(f"  differs: {flow}: {diffs}")
    for lay, values in spare[:max(show - len(out), 0)]:
        out.append(f"  not expired by the cache: {_describe(lay[1], values, keys_of.get(lay, ()))}")
    more = max(missing.total(), extra.total()) - len(out)
    if more > 0:
        out.append(f"  ... and {more} more")
    return out
