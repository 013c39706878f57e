"""The mapping's decoder sections: ``ipfix``/``netflowv9`` Template fields and ``sflow`` bits
of sampled headers (``probe.format.packet``) into flow fields.

goflow2 reads a mapped field while it decodes; here the decoder has already kept every field
of a batch under its IE name (``FlowBatch.raw``: ``ingressPhysicalInterface``, ``ie<id>``,
``<pen>.<id>`` for what the registry does not know), so a mapping entry copies that column
into its destination: a FlowMessage field (``in_if``, ``sampling_rate``) replaced in place,
or a new field at the end (declared in ``formatter.protobuf`` to reach the binary format).
The column is turned into the destination's kind as a whole (``probe.format.convert``). An
``array`` field gathers every value mapped to it, one list per row.
"""

from __future__ import annotations

from probe.collect.columns import Column, per_row
from probe.collect.flows import FlowBatch, column_values
from probe.format.convert import Convert, converter, hex_values
from probe.format.mapping import Mapping
from probe.format.packet import PacketProducer, array_fields
from probe.ie import by_name

_BY_TYPE = {"IPFIX": "ipfix", "NETFLOW_V9": "netflowv9"}


def _natural_size(raw_name: str) -> int:
    """The octets a field of this IE has at full size (how an integer was on the wire)."""
    ie = by_name(raw_name)
    return (ie.length if ie is not None else None) or 8


def _as_lists(c: Column) -> list[object]:
    return [[v] for v in column_values(c, False)]


class Producer:
    """Applies a mapping's decoder sections to decoded batches."""

    def __init__(self, mapping: Mapping) -> None:
        custom = mapping.custom_types()
        self.arrays = array_fields(mapping)
        self.plans: dict[str, list[tuple[str, str, Convert]]] = {}
        for flow_type, section in _BY_TYPE.items():
            plan = [(m.raw_name, m.destination,
                     converter(m.destination, custom, m.little_endian, _natural_size(m.raw_name)))
                    for m in getattr(mapping, section)]
            if plan:
                self.plans[flow_type] = plan
        self.packet = PacketProducer(mapping)

    def __bool__(self) -> bool:
        return bool(self.plans) or bool(self.packet)

    def apply(self, b: FlowBatch) -> list[FlowBatch]:
        """The batch with the mapped fields: changed in place, except that sFlow flows are
        split where some rows have a new field and others not (one batch per set of fields)."""
        if b.headers is not None:
            return self.packet.apply(b)
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
                new = per_row(lists, hex_values)
            b.columns[dest] = new
        return [b]
