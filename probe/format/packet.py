"""The mapping's ``sflow`` section: bits of each sampled packet's layers into flow fields.

goflow2's entry ``{layer: udp, offset: 48, length: 16, destination: csum}`` copies the 16 bits
that start 48 bits into the UDP header of an sFlow flow sample's raw header into ``csum``. The
layers are where the probe's capture decoder found them when it decoded the header
(``probe.collect.sampled``: carriers, IPv4 options and IPv6 extension chains included), so
every entry is one numpy gather over a batch's headers, no Python per flow:

==========================  =============================================================
layer                       starts at, for the samples that have it
==========================  =============================================================
``0``                       the sampled header's first octet (every sample with a header)
``ethernet``, ``2``         the same, for headers that are Ethernet frames
``3``, ``ip``               the IP header (``ipv4``, ``ipv6``: of that version only)
``4``                       the TCP or UDP header
``tcp``, ``udp``            the TCP, the UDP header
``icmp``, ``icmp6``         the ICMP (IPv4), the ICMPv6 header (also ``icmpv6``, ``ipv6-icmp``)
``7``, ``payload``          what follows the TCP header (its data offset) or the UDP header
==========================  =============================================================

A later fragment has no upper layer. A field is read only where all its bits were captured:
a sample whose header ends earlier, or that lacks the layer, does not get it. ``length`` bits
(up to 64) are one number, big-endian (``endianness: little`` reverses its octets); longer
fields are whole octets, for an address or a ``string``/``bytes`` field. Entries with
``encap: true`` read the layers of the packet inside a tunnel instead (the innermost one the
capture decoder opens): GRE and NVGRE, IP in IP, IPv6 in IP (goflow2 follows these without
being told) and Geneve on UDP port 6081 when ``sflow.ports`` names goflow2's ``geneve``
parser for it.

A new field that only some rows get splits the batch: one batch per set of fields, so a flow
without the field leaves it out (as ``formatter.fields`` says of any field). An existing
field keeps its value where the entry does not match. An ``array`` field gathers every value
mapped to it, in the order of the entries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from probe.capture import linktypes as lt
from probe.collect.columns import HEX, IPV4, TOK, Column, per_row, u64
from probe.collect.flows import FlowBatch, column_values
from probe.collect.sampled import Layers, SampledHeaders
from probe.format.convert import Convert, converter, hex_values, ip_values
from probe.format.mapping import MAX_NUMBER_BITS, LayerMap, Mapping
from probe.format.proto import ADDRESS_FIELDS, MESSAGE_FIELDS, is_repeated

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
UDP_HEADER = 8
# The tunnels goflow2 follows without a ``ports`` entry (IP protocols 47, 4 and 41).
DEFAULT_TUNNELS = frozenset({"gre", "ipInIp", "ipv6InIp"})
_NONE = np.int64(-1)


def array_fields(mapping: Mapping) -> set[str]:
    """Destinations that gather values into a list: declared ``array`` or repeated."""
    return {c.name for c in mapping.protobuf if c.array} | {
        n for n, f in MESSAGE_FIELDS.items() if is_repeated(f)}


def layer_start(h: SampledHeaders, layers: Layers, layer: str) -> np.ndarray:
    """Where ``layer`` starts in each row's header (octets), -1 where the row lacks it."""
    if layer == "0":
        return np.where(h.length > 0, 0, _NONE)
    if layer in ("ethernet", "2"):
        return np.where((h.length > 0) & (h.link == lt.EN10MB), 0, _NONE)
    if layer in ("3", "ip"):
        return layers.l3
    if layer in ("ipv4", "ipv6"):
        return np.where(layers.version == int(layer[-1]), layers.l3, _NONE)
    p, v, l4 = layers.proto, layers.version, layers.l4
    want = {"4": (p == TCP) | (p == UDP), "tcp": p == TCP, "udp": p == UDP,
            "icmp": (p == ICMP) & (v == 4)}
    if layer in want:
        return np.where(want[layer], l4, _NONE)
    if layer in ("icmp6", "icmpv6", "ipv6-icmp"):
        return np.where((p == ICMPV6) & (v == 6), l4, _NONE)
    # "7", "payload": after the UDP header, or the TCP header as its data offset says
    tcp = (p == TCP) & (l4 >= 0) & (l4 + 13 <= h.length)
    doff = np.zeros(len(l4), np.int64)
    rows = np.flatnonzero(tcp)
    doff[rows] = (h.octets()[h.start[rows] + l4[rows] + 12] >> 4).astype(np.int64) * 4
    udp = (p == UDP) & (l4 >= 0)
    return np.where(udp, l4 + UDP_HEADER, np.where(tcp, l4 + doff, _NONE))


def extract(h: SampledHeaders, start: np.ndarray, offset: int, length: int
            ) -> tuple[np.ndarray, Column | None]:
    """``length`` bits at ``offset`` bits from ``start`` (octets into each header): the rows
    that have all of them, and their values (a number each, or octets past 64 bits)."""
    first = start * 8 + offset
    rows = np.flatnonzero((start >= 0) & (first + length <= h.length * 8))
    if not rows.size:
        return rows, None
    shift = offset % 8  # the same in every row: layers start on octets
    width = (shift + length + 7) // 8
    at = h.start[rows] + first[rows] // 8
    window = h.octets()[at[:, None] + np.arange(width)]
    if length > MAX_NUMBER_BITS:  # whole octets (the mapping checks)
        return rows, Column(HEX, window)
    nine = np.zeros((len(rows), 9), np.uint8)  # at most 64 bits span 9 octets
    nine[:, :width] = window
    high = np.ascontiguousarray(nine[:, :8]).view(">u8")[:, 0].astype(np.uint64)
    low = nine[:, 8].astype(np.uint64)
    value = (high << np.uint64(shift)) | (low >> np.uint64(8 - shift))
    return rows, u64(value >> np.uint64(64 - length))


class PacketProducer:
    """Applies a mapping's ``sflow`` entries to sFlow flow batches."""

    def __init__(self, mapping: Mapping) -> None:
        custom = mapping.custom_types()
        self.arrays = array_fields(mapping)
        self.entries: list[tuple[LayerMap, Convert]] = [
            (e, converter(e.destination, custom, e.little_endian, (e.length + 7) // 8))
            for e in mapping.sflow]
        self.tunnels = DEFAULT_TUNNELS | {p.tunnel for p in mapping.sflow_ports if p.tunnel}

    def __bool__(self) -> bool:
        return bool(self.entries)

    def apply(self, b: FlowBatch) -> list[FlowBatch]:
        h = b.headers
        if h is None or not self.entries or not b.n:
            return [b]
        inner: Layers | None = None
        starts: dict[tuple[str, bool], np.ndarray] = {}
        found: dict[str, list[tuple[np.ndarray, Column]]] = {}
        for e, convert in self.entries:
            key = (e.layer, e.encap)
            if key not in starts:
                if e.encap and inner is None:
                    inner = h.inside(self.tunnels)[1]
                layers = inner if e.encap and inner is not None else h.layers
                starts[key] = layer_start(h, layers, e.layer)
            rows, col = extract(h, starts[key], e.offset, e.length)
            new = None if col is None else convert(col, len(rows))
            if new is not None:
                found.setdefault(e.destination, []).append((rows, new))
        present: dict[str, np.ndarray] = {}
        for dest, parts in found.items():
            old = b.columns.get(dest)
            conv = ip_values if dest in ADDRESS_FIELDS else hex_values
            if dest in self.arrays:
                b.columns[dest], present[dest] = _gather(old, parts, b.n, conv)
            else:
                b.columns[dest], present[dest] = _scatter(old, parts, b.n, conv)
        return _split(b, {d: m for d, m in present.items() if not m.all()})


def _plain(c: Column) -> list[object]:
    """Each row's value, addresses as their octets (so that either family fits a field)."""
    if c.kind == IPV4:
        return [int(v).to_bytes(4, "big") for v in c.data.tolist()]
    return column_values(c, False)


def _gather(old: Column | None, parts: list[tuple[np.ndarray, Column]], n: int,
            conv: Callable[[object], object]) -> tuple[Column, np.ndarray]:
    """An array field: each row's old values, then every entry's, in entry order."""
    lists: list[list[object]] = [[] for _ in range(n)] if old is None else [
        list(v) if isinstance(v, list) else [v] for v in _plain(old)]
    have = np.full(n, old is not None)
    for rows, col in parts:
        for r, v in zip(rows.tolist(), _plain(col), strict=True):
            lists[r].append(v)
        have[rows] = True
    return per_row(lists, conv), have  # type: ignore[arg-type]


def _scatter(old: Column | None, parts: list[tuple[np.ndarray, Column]], n: int,
             conv: Callable[[object], object]) -> tuple[Column, np.ndarray]:
    """A field of one value: the last entry that matched a row gives it, else the old one."""
    have = np.full(n, old is not None)
    cols = ([] if old is None else [old]) + [c for _, c in parts]
    kind, shape = cols[0].kind, cols[0].data.shape[1:]
    if kind != TOK and all(c.kind == kind and c.data.shape[1:] == shape for c in cols):
        data = np.zeros((n, *shape), cols[0].data.dtype) if old is None else old.data.copy()
        for rows, c in parts:
            data[rows] = c.data
            have[rows] = True
        return Column(kind, data), have
    # kinds that differ (octets of two widths, an address of either family): values per row
    values: list[object] = [None] * n if old is None else _plain(old)
    for rows, c in parts:
        for r, v in zip(rows.tolist(), _plain(c), strict=True):
            values[r] = v
        have[rows] = True
    return per_row(values, conv), have


def _split(b: FlowBatch, partial: dict[str, np.ndarray]) -> list[FlowBatch]:
    """One batch per set of the fields only some rows have; a row leaves out what it lacks."""
    if not partial:
        return [b]
    names = list(partial)
    code = np.zeros(b.n, np.int64)
    for i, name in enumerate(names):
        code |= partial[name].astype(np.int64) << i
    out = []
    for value in np.unique(code).tolist():
        part = b.take(np.flatnonzero(code == value))
        for i, name in enumerate(names):
            if not (value >> i) & 1:
                del part.columns[name]
        out.append(part)
    return out
