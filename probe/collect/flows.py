"""``FlowBatch``: decoded flow records as columns, the representation every output format reads.

A batch is n flow records of one message type whose fields are the same for every row:

- ``columns``: the JSON-line fields in the order a line has them, goflow2's names where one
  exists (``type``, ``time_received_ns``, ``sequence_num``, ``sampling_rate``,
  ``sampler_address``, ``time_flow_start_ns``, ``time_flow_end_ns``, ``bytes``, ``packets``,
  ``observation_domain_id`` (not NetFlow v5), then the goflow2-named fields the template
  carries, ``etype``, then every other field under its IANA IE name). Each is a ``Column``
  (``probe.collect.columns``): a numpy array and a kind that says how it is written.
- ``raw``: every field the message carried, by IE name, as plain values (IPv4 as int, IPv6
  as 16 bytes, times in the IE's unit): what ``replay --verify`` compares with the cache.

``json_lines()`` writes the batch as JSON lines in one C call (``probe.collect._jsonl``);
``records()`` gives one ``Record`` (two dicts) per row, the slow general form for tests,
``--verify`` and the text table. A format that wants other fields (a protobuf message, a
renamed field) reads ``columns`` or ``raw`` and never needs a record at a time.

``build_batch`` is the one place where IE fields become goflow2 fields (names, times,
sampling, ICMP, Ethernet type), column by column: the fixed-length path (a numpy record view
per Data Set) and the per-record path (variable-length templates) both end here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from probe.collect._jsonl import render as render_json
from probe.collect.columns import (
    HEX,
    INTEGER,
    IPV4,
    IPV6,
    MAC,
    NUMERIC,
    TOK,
    Column,
    i64,
    tok,
    u64,
)
from probe.collect.values import ipv4_text, ipv6_text, mac_text

if TYPE_CHECKING:
    from probe.collect.sampled import SampledHeaders

# IE name -> goflow2 name. The first IE present of a goflow2 name wins; a second one (e.g.
# postOctetDeltaCount beside octetDeltaCount) keeps its IE name.
GOFLOW_NAMES: dict[str, str] = {
    "octetDeltaCount": "bytes", "postOctetDeltaCount": "bytes", "octetTotalCount": "bytes",
    "packetDeltaCount": "packets", "postPacketDeltaCount": "packets",
    "packetTotalCount": "packets",
    "sourceIPv4Address": "src_addr", "sourceIPv6Address": "src_addr",
    "destinationIPv4Address": "dst_addr", "destinationIPv6Address": "dst_addr",
    "protocolIdentifier": "proto",
    "sourceTransportPort": "src_port", "udpSourcePort": "src_port", "tcpSourcePort": "src_port",
    "destinationTransportPort": "dst_port", "udpDestinationPort": "dst_port",
    "tcpDestinationPort": "dst_port",
    "tcpControlBits": "tcp_flags", "ipClassOfService": "ip_tos",
    "icmpTypeIPv4": "icmp_type", "icmpTypeIPv6": "icmp_type",
    "icmpCodeIPv4": "icmp_code", "icmpCodeIPv6": "icmp_code",
    "vlanId": "vlan_id", "sourceMacAddress": "src_mac",
    "postDestinationMacAddress": "dst_mac", "destinationMacAddress": "dst_mac",
    "flowLabelIPv6": "ipv6_flow_label", "fragmentIdentification": "fragment_id",
    "fragmentOffset": "fragment_offset", "forwardingStatus": "forwarding_status",
    "ingressInterface": "in_if", "egressInterface": "out_if",
    "bgpSourceAsNumber": "src_as", "bgpDestinationAsNumber": "dst_as",
    "ipNextHopIPv4Address": "next_hop", "ipNextHopIPv6Address": "next_hop",
    "bgpNextHopIPv4Address": "bgp_next_hop", "bgpNextHopIPv6Address": "bgp_next_hop",
    "sourceIPv4PrefixLength": "src_net", "sourceIPv6PrefixLength": "src_net",
    "destinationIPv4PrefixLength": "dst_net", "destinationIPv6PrefixLength": "dst_net",
    "postVlanId": "dst_vlan",
}

_ICMP_TYPECODE = ("icmpTypeCodeIPv4", "icmpTypeCodeIPv6")
_ADDRESSES = frozenset({"src_addr", "dst_addr", "next_hop", "bgp_next_hop"})

# Start/end time fields, finest first: (IE name, multiplier to ns, relative-to).
_STARTS = (("flowStartNanoseconds", 1, None), ("flowStartMicroseconds", 1000, None),
           ("flowStartMilliseconds", 1_000_000, None), ("flowStartSeconds", 1_000_000_000, None),
           ("flowStartSysUpTime", 1_000_000, "uptime"),
           ("flowStartDeltaMicroseconds", 1000, "delta"))
_ENDS = (("flowEndNanoseconds", 1, None), ("flowEndMicroseconds", 1000, None),
         ("flowEndMilliseconds", 1_000_000, None), ("flowEndSeconds", 1_000_000_000, None),
         ("flowEndSysUpTime", 1_000_000, "uptime"),
         ("flowEndDeltaMicroseconds", 1000, "delta"))
_TIME_FIELDS = frozenset(n for n, _, _ in _STARTS + _ENDS)

# Sampling parameters a data record may carry; the options records' ones are applied to the
# domain as they arrive (probe.collect.options).
SAMPLER_KEYS = ("samplerId", "selectorId", "flowSamplerID")


@dataclass(slots=True)
class Record:
    """One decoded flow: ``flow`` is the JSON line, ``raw`` the IE-name -> plain-value map."""

    flow: dict[str, object]
    raw: dict[str, object]


@dataclass(slots=True)
class Context:
    """Per-row facts from the message headers and the domain state, as columns.

    ``samplers`` are the domain's selector id -> rate tables as they were when each row's
    Data Set was decoded (``sampler_table`` indexes them); ``fallback_rate`` is the rate a row
    gets when neither it nor its selector says one (the domain's, the one selector's, or the
    NetFlow v5 header's).
    """

    received_ns: np.ndarray  # uint64
    sequence: np.ndarray  # uint64
    domain: np.ndarray  # uint64
    exporter: Column  # TOK of exporter addresses (text)
    export_secs: np.ndarray  # int64
    sys_uptime_ms: np.ndarray | None  # int64, NetFlow v5 / v9 only
    unix_nsecs: np.ndarray | None  # int64, NetFlow v5 only
    fallback_rate: np.ndarray  # uint64
    sys_init_ms: np.ndarray  # int64; -1: unknown
    sampler_table: np.ndarray  # int32 index into samplers
    samplers: list[dict[int, int]]


@dataclass(slots=True)
class FlowBatch:
    n: int
    type: str  # "IPFIX", "NETFLOW_V9", "NETFLOW_V5" (goflow2's FlowMessage type names)
    columns: dict[str, Column]
    raw: dict[str, Column]
    # sFlow flow samples: each row's sampled header and its layers (``probe.collect.sampled``),
    # for a mapping that reads bits of them; None for every other batch.
    headers: SampledHeaders | None = None

    def __len__(self) -> int:
        return self.n

    def json_lines(self) -> bytes:
        """Every row as a JSON object on its own line (UTF-8)."""
        return render_json(self.n, json_plan(self.columns)) if self.n else b""

    def records(self) -> list[Record]:
        flows = _rows(self.columns, self.n, flow=True)
        raws = _rows(self.raw, self.n, flow=False)
        return [Record(f, r) for f, r in zip(flows, raws, strict=True)]

    def take(self, idx: np.ndarray) -> FlowBatch:
        """The rows ``idx`` (a boolean mask or indexes) as a batch of their own."""
        cols = {k: c.take(idx) for k, c in self.columns.items()}
        shared = {id(c): cols[k] for k, c in self.columns.items()}
        raw = {k: shared.get(id(c)) or c.take(idx) for k, c in self.raw.items()}
        headers = None if self.headers is None else self.headers.take(idx)
        return FlowBatch(len(next(iter(cols.values())).data), self.type, cols, raw, headers)


# ------------------------------------------------------------------ JSON lines
def _dumps(v: object) -> bytes:
    return json.dumps(v, separators=(",", ":")).encode()


def json_plan(columns: dict[str, Column]) -> list[tuple[bytes, int, object, object, int]]:
    plan: list[tuple[bytes, int, object, object, int]] = []
    for i, (name, c) in enumerate(columns.items()):
        prefix = (b"{" if i == 0 else b",") + _dumps(name) + b":"
        if c.kind == TOK:
            tokens = [_dumps(c.conv(v)) for v in c.values or ()]
            plan.append((prefix, TOK, c.data, tokens, 0))
        elif c.kind == HEX:
            plan.append((prefix, HEX, c.data, None, c.data.shape[1]))
        else:
            plan.append((prefix, c.kind, c.data, None, 0))
    if not plan:
        plan.append((b"{", TOK, np.zeros(0, np.int32), [b""], 0))
    return plan


# ------------------------------------------------------------------ rows (the slow form)
def _values(c: Column, flow: bool) -> list[object]:
    if c.kind in INTEGER:
        return c.data.tolist()
    if c.kind == IPV4:
        v = c.data.tolist()
        return [ipv4_text(x) for x in v] if flow else v
    if c.kind == MAC:
        v = c.data.tolist()
        return [mac_text(x) for x in v] if flow else v
    if c.kind == IPV6:
        b = [bytes(r) for r in c.data]
        return [ipv6_text(x) for x in b] if flow else b
    if c.kind == HEX:
        b = [bytes(r) for r in c.data]
        return [x.hex() for x in b] if flow else b
    vals = c.values or []
    if flow:
        vals = [c.conv(v) for v in vals]
    return [vals[i] for i in c.data.tolist()]


def column_values(c: Column, flow: bool = True) -> list[object]:
    """One value per row: as the JSON line has it (``flow``) or the plain value (``raw``)."""
    return _values(c, flow)


def _rows(columns: dict[str, Column], n: int, flow: bool) -> list[dict[str, object]]:
    if not columns:
        return [{} for _ in range(n)]
    names = list(columns)
    lists = [_values(c, flow) for c in columns.values()]
    return [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]


# ------------------------------------------------------------------ IE fields -> goflow2 fields
_SKIP, _GOFLOW, _ICMP, _REST = range(4)


@lru_cache(maxsize=4096)
def _plan(name: str) -> tuple[int, str]:
    """What build_batch does with a field, decided once per field name."""
    if name in _TIME_FIELDS:
        return _SKIP, ""
    if name in GOFLOW_NAMES:
        return _GOFLOW, GOFLOW_NAMES[name]
    if name in _ICMP_TYPECODE:
        return _ICMP, ""
    return _REST, ""


def _int(raw: dict[str, Column], name: str) -> np.ndarray | None:
    c = raw.get(name)
    return c.data.astype(np.int64) if c is not None and c.kind in INTEGER else None


def _times(raw: dict[str, Column], table: tuple, ctx: Context, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    for name, mult, rel in table:
        v = _int(raw, name)
        if v is None:
            continue
        usable: np.ndarray | bool = True
        if rel is None:
            t = v * mult
        elif rel == "delta":
            t = ctx.export_secs * 1_000_000_000 - v * mult
        elif ctx.sys_uptime_ms is not None:  # v5 / v9: relative to the header's uptime
            back = (ctx.sys_uptime_ms - v) & 0xFFFFFFFF
            back = np.where(back >= 1 << 31, back - (1 << 32), back)
            nsecs = ctx.unix_nsecs if ctx.unix_nsecs is not None else 0
            export_ms = ctx.export_secs * 1000 + nsecs // 1_000_000
            t = (export_ms - back) * 1_000_000
        else:  # IPFIX: relative to systemInitTimeMilliseconds, where an options record said it
            usable = ctx.sys_init_ms >= 0
            t = (ctx.sys_init_ms + v) * 1_000_000
        take = ~done & usable
        out = np.where(take, t, out)
        done |= take
        if done.all():
            break
    return out


def sampling_rate(raw: dict[str, Column], ctx: Context, n: int) -> np.ndarray:
    """The 1-in-N rate of each row: stated in the record (v9 IEs 34/50, RFC 5476 IEs 305/306
    and 309/310), else its selector's, else the context's fallback."""
    rate = np.zeros(n, dtype=np.int64)
    have = np.zeros(n, dtype=bool)

    def offer(value: np.ndarray, ok: np.ndarray) -> None:
        nonlocal rate, have
        take = ~have & ok
        rate = np.where(take, value, rate)
        have |= take

    for name in ("samplingInterval", "samplerRandomInterval"):
        v = _int(raw, name)
        if v is not None:
            offer(v, v > 0)
    interval, space = _int(raw, "samplingPacketInterval"), _int(raw, "samplingPacketSpace")
    if interval is not None and space is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            offer(np.rint((interval + space) / np.where(interval > 0, interval, 1))
                  .astype(np.int64), interval > 0)
    size, pop = _int(raw, "samplingSize"), _int(raw, "samplingPopulation")
    if size is not None and pop is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            offer(np.rint(pop / np.where(size > 0, size, 1)).astype(np.int64), size > 0)
    key = next((k for k in (_int(raw, n_) for n_ in SAMPLER_KEYS) if k is not None), None)
    if key is not None and not have.all() and any(ctx.samplers):
        pairs = np.stack([ctx.sampler_table.astype(np.int64), key])
        uniq, inverse = np.unique(pairs, axis=1, return_inverse=True)
        found = np.array([ctx.samplers[t].get(k, -1) for t, k in uniq.T.tolist()],
                         dtype=np.int64)[inverse.reshape(-1)]
        offer(found, found >= 0)
    offer(ctx.fallback_rate.astype(np.int64), np.ones(n, dtype=bool))
    return rate


def _etype(raw: dict[str, Column], n: int) -> np.ndarray | None:
    v4 = "sourceIPv4Address" in raw or "destinationIPv4Address" in raw
    v6 = "sourceIPv6Address" in raw or "destinationIPv6Address" in raw
    version = _int(raw, "ipVersion")
    if v4:
        return np.full(n, 0x800, dtype=np.uint64)
    if version is not None:
        return np.where(version == 4, 0x800, np.where((version == 6) | v6, 0x86DD, 0)) \
            .astype(np.uint64)
    if v6:
        return np.full(n, 0x86DD, dtype=np.uint64)
    return None


def build_batch(msg_type: str, raw: dict[str, Column], ctx: Context, n: int) -> FlowBatch:
    """The goflow2-named columns of n rows whose IE-named columns are ``raw``."""
    if msg_type == "NETFLOW_V9" and "icmpTypeCodeIPv4" in raw and "sourceIPv6Address" in raw:
        # v9 knows no IPv6 ICMP field: ICMP_TYPE (32) in an IPv6 record is the ICMPv6 one.
        raw = {("icmpTypeCodeIPv6" if k == "icmpTypeCodeIPv4" else k): v for k, v in raw.items()}
    zero = u64(np.zeros(n, dtype=np.uint64))
    cols: dict[str, Column] = {
        "type": tok([msg_type], np.zeros(n, np.int32)),
        "time_received_ns": u64(ctx.received_ns),
        "sequence_num": u64(ctx.sequence),
        "sampling_rate": i64(sampling_rate(raw, ctx, n)),
        "sampler_address": ctx.exporter,
        "time_flow_start_ns": i64(_times(raw, _STARTS, ctx, n)),
        "time_flow_end_ns": i64(_times(raw, _ENDS, ctx, n)),
        "bytes": zero,
        "packets": zero,
    }
    if msg_type != "NETFLOW_V5":
        cols["observation_domain_id"] = u64(ctx.domain)
    seen: set[str] = set()
    rest: dict[str, Column] = {}
    for name, c in raw.items():
        kind, target = _plan(name)
        if kind == _SKIP:
            continue
        if kind == _GOFLOW and target not in seen and (c.kind in NUMERIC
                                                       or target in _ADDRESSES):
            seen.add(target)
            cols[target] = c
        elif kind == _ICMP and c.kind in INTEGER and "icmp_type" not in seen:
            seen.update(("icmp_type", "icmp_code"))
            v = c.data.astype(np.uint64)
            cols["icmp_type"] = u64((v >> np.uint64(8)) & np.uint64(0xFF))
            cols["icmp_code"] = u64(v & np.uint64(0xFF))
        else:
            rest[name] = c
    etype = _etype(raw, n)
    if etype is not None:
        cols["etype"] = u64(etype)
    cols.update(rest)
    return FlowBatch(n, msg_type, cols, raw)
