"""The oracle of tests/collect/test_columns.py: the collector's former per-record mapping.

Until the columnar path (probe.collect.flows) replaced it, this was probe/collect/records.py:
each decoded record (a dict of IE name -> plain value) became its JSON-line dict here. It is
kept, unchanged but for sharing the name table and the options' rate rule, so the columns are
checked against an independent, record-at-a-time reading of the same fields.

Decoded records -> the JSON-line dicts: goflow2's field names where one exists, else IANA's.

Mapping (seed 002, goflow2's protobuf table): counters, addresses, ports, flags, ICMP, MACs,
VLAN, flow label, fragment id, interfaces, AS numbers, next hops, prefix lengths. Everything
without a goflow2 name keeps its IE name (``flowEndReason``, ``minimumTTL``...) and unknown IEs
their ``ie<id>`` / ``<pen>.<id>`` name. Times become ``time_flow_start_ns``/``time_flow_end_ns``
from whichever flowStart*/flowEnd* field the exporter used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from probe.collect.flows import (  # the tables, not the logic
    _ADDRESSES,
    _ENDS,
    _ICMP_TYPECODE,
    _STARTS,
    _TIME_FIELDS,
    GOFLOW_NAMES,
)
from probe.collect.flows import SAMPLER_KEYS as _SAMPLER_KEYS
from probe.collect.records import sampling_rate_of
from probe.collect.session import MessageContext
from probe.collect.values import json_converter
from probe.wire import DomainState


@dataclass(slots=True)
class Record:
    """One decoded flow: ``flow`` is the JSON line, ``raw`` the IE-name -> plain-value map."""

    flow: dict[str, object]
    raw: dict[str, object]


def _sampler_key(raw: dict[str, object]) -> int | None:
    for name in _SAMPLER_KEYS:
        v = raw.get(name)
        if isinstance(v, int):
            return v
    return None


def apply_options(ds: DomainState, raw: dict[str, object], max_samplers: int) -> None:
    """Remember what an options record says about the domain: sampling and its init time."""
    init = raw.get("systemInitTimeMilliseconds")
    if isinstance(init, int):
        ds.sys_init_ms = init
    rate = sampling_rate_of(raw)
    if rate is None:
        return
    key = _sampler_key(raw)
    if key is None:
        ds.sampling_rate = rate
        return
    ds.samplers[key] = rate
    ds.samplers.move_to_end(key)
    while len(ds.samplers) > max_samplers:
        ds.samplers.popitem(last=False)


def _sampling(ctx: MessageContext, ds: DomainState, raw: dict[str, object]) -> int:
    rate = sampling_rate_of(raw)
    if rate is not None:
        return rate
    key = _sampler_key(raw)
    if key is not None and key in ds.samplers:
        return ds.samplers[key]
    if ds.sampling_rate:
        return ds.sampling_rate
    if len(ds.samplers) == 1:  # one selector configured: it feeds every flow of the domain
        return next(iter(ds.samplers.values()))
    return ctx.header_sampling


def _time_ns(raw: dict[str, object], table: tuple, ctx: MessageContext,
             ds: DomainState) -> int:
    for name, mult, rel in table:
        v = raw.get(name)
        if not isinstance(v, int):
            continue
        if rel is None:
            return v * mult
        if rel == "delta":
            return ctx.export_secs * 1_000_000_000 - v * mult
        if ctx.sys_uptime_ms is not None:  # v5 / v9: relative to the header's uptime
            back = (ctx.sys_uptime_ms - v) & 0xFFFFFFFF
            if back >= 1 << 31:  # the field is after the header's uptime: negative distance
                back -= 1 << 32
            export_ms = ctx.export_secs * 1000 + ctx.unix_nsecs // 1_000_000
            return (export_ms - back) * 1_000_000
        if ds.sys_init_ms is not None:  # IPFIX: relative to systemInitTimeMilliseconds
            return (ds.sys_init_ms + v) * 1_000_000
    return 0


_SKIP, _GOFLOW, _ICMP, _REST = range(4)


@lru_cache(maxsize=4096)
def _plan(name: str) -> tuple[int, str, Callable[[object], object]]:
    """What build_flow does with a field, decided once per field name."""
    conv = json_converter(name)
    if name in _TIME_FIELDS:
        return _SKIP, "", conv
    if name in GOFLOW_NAMES:
        return _GOFLOW, GOFLOW_NAMES[name], conv
    if name in _ICMP_TYPECODE:
        return _ICMP, "", conv
    return _REST, "", conv


def build_flow(ctx: MessageContext, ds: DomainState, raw: dict[str, object]) -> Record:
    if ctx.type == "NETFLOW_V9" and "icmpTypeCodeIPv4" in raw and "sourceIPv6Address" in raw:
        # v9 knows no IPv6 ICMP field: ICMP_TYPE (32) in an IPv6 record is the ICMPv6 one.
        raw = {("icmpTypeCodeIPv6" if k == "icmpTypeCodeIPv4" else k): v for k, v in raw.items()}
    flow: dict[str, object] = {
        "type": ctx.type,
        "time_received_ns": ctx.received_ns,
        "sequence_num": ctx.sequence,
        "sampling_rate": _sampling(ctx, ds, raw),
        "sampler_address": ctx.exporter,
        "time_flow_start_ns": _time_ns(raw, _STARTS, ctx, ds),
        "time_flow_end_ns": _time_ns(raw, _ENDS, ctx, ds),
        "bytes": 0,
        "packets": 0,
    }
    if ctx.type != "NETFLOW_V5":
        flow["observation_domain_id"] = ctx.domain
    seen: set[str] = set()
    rest: dict[str, object] = {}
    for name, value in raw.items():
        kind, target, conv = _plan(name)
        if kind == _SKIP:
            continue
        if kind == _GOFLOW and target not in seen and (
                not isinstance(value, bytes | str) or target in _ADDRESSES):
            seen.add(target)
            flow[target] = conv(value)
        elif kind == _ICMP and isinstance(value, int) and "icmp_type" not in seen:
            seen.update(("icmp_type", "icmp_code"))
            flow["icmp_type"], flow["icmp_code"] = (value >> 8) & 0xFF, value & 0xFF
        else:
            rest[name] = conv(value)
    etype = _etype(raw)
    if etype:
        flow["etype"] = etype
    flow.update(rest)
    return Record(flow, raw)


def _etype(raw: dict[str, object]) -> int:
    version = raw.get("ipVersion")
    if version == 4 or "sourceIPv4Address" in raw or "destinationIPv4Address" in raw:
        return 0x800
    if version == 6 or "sourceIPv6Address" in raw or "destinationIPv6Address" in raw:
        return 0x86DD
    return 0
