"""What the formats read of a ``FlowBatch`` (``probe.collect.flows``), column by column.

The collector hands on flows as ``FlowBatch``es: n records of one type and shape, each field
one numpy ``Column``. The formats here keep to that: the mapping and the enrichment add or
change whole columns, the JSON writer renders columns (in C, as the collector's own JSON
lines), and only what is per flow by nature (a protobuf message, a NATS subject) reads rows,
each column turned into a Python list once.
"""

from __future__ import annotations

import numpy as np

from probe.collect.columns import IPV4, IPV6, TOK, Column
from probe.collect.flows import FlowBatch, column_values

__all__ = ["FlowBatch", "address_octets", "column_values", "is_counters", "with_columns"]


def is_counters(b: FlowBatch) -> bool:
    """An sFlow counter-sample batch: records of their own, not flows."""
    c = b.columns.get("sample_type")
    return c is not None and c.kind == TOK and (c.values or [None])[0] == "counters"


def address_octets(b: FlowBatch, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column ``name`` (``src_addr``...) as (n, 16) octets (IPv4 in octets 0..3), whether each
    row's is IPv6, and whether the row has one at all."""
    c = b.columns.get(name)
    n = b.n
    out = np.zeros((n, 16), np.uint8)
    if c is None or c.kind not in (IPV4, IPV6):
        return out, np.zeros(n, bool), np.zeros(n, bool)
    if c.kind == IPV6:
        return np.ascontiguousarray(c.data, dtype=np.uint8), np.ones(n, bool), np.ones(n, bool)
    out[:, :4] = c.data.astype(">u4").view(np.uint8).reshape(n, 4)
    return out, np.zeros(n, bool), np.ones(n, bool)


def with_columns(b: FlowBatch, columns: dict[str, Column]) -> FlowBatch:
    """The same records with other columns (the raw values stay)."""
    return FlowBatch(b.n, b.type, columns, b.raw)
