"""The mapping's ``ipfix`` and ``netflowv9`` sections: Template fields into flow fields.

goflow2 reads a mapped field while it decodes; here the decoder has already kept every field
of a batch under its IE name (``FlowBatch.raw``: ``ingressPhysicalInterface``, ``ie<id>``,
``<pen>.<id>`` for what the registry does not know), so a mapping entry copies that column
into its destination: a FlowMessage field (``in_if``, ``sampling_rate``) replaced in place,
or a new field at the end (declared in ``formatter.protobuf`` to reach the binary format).
The column is turned into the destination's kind as a whole: a number (read little-endian
if the entry says so: the field's octets reversed), octets for a declared ``string`` /
``bytes`` field, an address or a MAC for FlowMessage's address and MAC fields. An ``array``
field gathers every value mapped to it, one list per row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from probe.collect.columns import HEX, INTEGER, IPV4, IPV6, MAC, NUMERIC, Column, per_row, u64
from probe.collect.flows import FlowBatch, column_values
from probe.format.mapping import FieldMap, Mapping
from probe.format.proto import ADDRESS_FIELDS, MAC_FIELDS, MESSAGE_FIELDS, is_repeated
from probe.ie import by_name

_BY_TYPE = {"IPFIX": "ipfix", "NETFLOW_V9": "netflowv9"}
Convert = Callable[[Column, int], Column | None]


def _natural_size(raw_name: str) -> int:
    """The octets a field of this IE has at full size (how an integer was on the wire)."""
    ie = by_name(raw_name)
    return (ie.length if ie is not None else None) or 8


def _octets_of(v: object, size: int) -> bytes:
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v.to_bytes(max(size, (v.bit_length() + 7) // 8, 1), "big")
    return str(v).encode()


def _number(m: FieldMap, size: int) -> Convert:
    order = "little" if m.little_endian else "big"

    def convert(c: Column, n: int) -> Column | None:
        if c.kind in NUMERIC:
            v = c.data.astype(np.uint64)
            if not m.little_endian or size == 1:
                return u64(v)
            if size in (2, 4, 8):  # the octets as they were on the wire, read the other way
                return u64(v.astype(f">u{size}").view(f"<u{size}").astype(np.uint64))
        values = [int.from_bytes(_octets_of(x, size), order) for x in column_values(c, False)]
        if values and max(values) < 1 << 64:
            return u64(np.asarray(values, dtype=np.uint64))
        return per_row(values)  # type: ignore[arg-type]
    return convert


def _address(c: Column, n: int) -> Column | None:
    if c.kind in (IPV4, IPV6):
        return c
    if c.kind in INTEGER and (n == 0 or int(c.data.max()) < 1 << 32):
        return Column(IPV4, c.data.astype(np.uint32))
    if c.kind == HEX and c.data.shape[1] == 4:
        return Column(IPV4, c.data.view(">u4")[:, 0].astype(np.uint32))
    if c.kind == HEX and c.data.shape[1] == 16:
        return Column(IPV6, c.data)
    return None  # no address: the destination is left as it was


def _mac(c: Column, n: int) -> Column | None:
    return Column(MAC, c.data.astype(np.uint64)) if c.kind in NUMERIC else None


def _octets(size: int) -> Convert:
    def convert(c: Column, n: int) -> Column | None:
        if c.kind == HEX:
            return c
        if c.kind in NUMERIC and size in (1, 2, 4, 8):
            big = c.data.astype(np.uint64).astype(f">u{size}")
            return Column(HEX, big.view(np.uint8).reshape(n, size))
        if c.kind == IPV6:
            return Column(HEX, c.data)
        return per_row([_octets_of(v, size) for v in column_values(c, False)],
                       lambda v: v.hex() if isinstance(v, bytes) else v)
    return convert


def _as_lists(c: Column) -> list[object]:
    return [[v] for v in column_values(c, False)]


def _hex_lists(v: object) -> object:
    return [x.hex() if isinstance(x, bytes) else x for x in v] if isinstance(v, list) else v


class Producer:
    """Applies a mapping's template-field entries to decoded batches, in place."""

    def __init__(self, mapping: Mapping) -> None:
        custom = mapping.custom_types()
        self.arrays = {c.name for c in mapping.protobuf if c.array} | {
            n for n, f in MESSAGE_FIELDS.items() if is_repeated(f)}
        self.plans: dict[str, list[tuple[str, str, Convert]]] = {}
        for flow_type, section in _BY_TYPE.items():
            plan = []
            for m in getattr(mapping, section):
                dest, size = m.destination, _natural_size(m.raw_name)
                if dest in ADDRESS_FIELDS:
                    convert: Convert = _address
                elif dest in MAC_FIELDS:
                    convert = _mac
                elif dest in custom and custom[dest].type != "varint":
                    convert = _octets(size)
                else:
                    convert = _number(m, size)
                plan.append((m.raw_name, dest, convert))
            if plan:
                self.plans[flow_type] = plan

    def __bool__(self) -> bool:
        return bool(self.plans)

    def apply(self, b: FlowBatch) -> None:
        for raw_name, dest, convert in self.plans.get(b.type, ()):
            col = b.raw.get(raw_name)
            if col is None:
                continue
            new = convert(col, b.n)
            if new is None:
                continue
            if dest in self.arrays:
                lists = _as_lists(new)
                old = b.columns.get(dest)
                if old is not None:
                    lists = [a + b_ for a, b_ in  # type: ignore[operator]
                             zip(column_values(old, False), lists, strict=True)]
                new = per_row(lists, _hex_lists)
            b.columns[dest] = new
