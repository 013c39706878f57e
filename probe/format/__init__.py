"""Formats of the collector's flows, goflow2's way: JSON lines shaped by a mapping file,
goflow2's protobuf (``flowpb.FlowMessage``, varint-length-delimited), and the steps before
them: the mapping's template-field entries (``produce``) and context enrichment.

Each works on the collector's ``FlowBatch``es, a column at a time (``batch``).
"""

from probe.format.batch import address_octets, is_counters, with_columns

__all__ = ["address_octets", "is_counters", "with_columns"]
