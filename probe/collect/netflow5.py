"""NetFlow v5 packets: a 24-byte header and 1..30 fixed 48-byte IPv4 records.

Records are decoded into IE names (the raw mapping) so v5, v9 and IPFIX flows look alike.
"""

from __future__ import annotations

from probe.collect.columns import compile_layout
from probe.collect.datasets import facts_of
from probe.collect.records import fallback_rate
from probe.collect.session import (
    MessageContext,
    Session,
    SessionTable,
    sequence_gap,
    unpack_header,
)
from probe.ie import by_name
from probe.wire import field_spec
from probe.wire.messages import (
    V5_FIELDS,
    V5_HEADER,
    V5_MAX_RECORDS,
    V5_RECORD_LEN,
    V5_VERSION,
)

# The v5 record as a Template would describe it (padding as unnamed octets), decoded as
# columns like any fixed-length Template; probe.collect.pending.v5_fields adds ICMP and engine.
_SPECS = tuple(field_spec(by_name(ie).id, n) if ie else field_spec(210, n)  # paddingOctets
               for _, n, ie in V5_FIELDS)
LAYOUT = compile_layout(_SPECS, tuple(ie or f"pad{i}" for i, (_, _, ie) in
                                      enumerate(V5_FIELDS)))
assert LAYOUT is not None and LAYOUT.record_len == V5_RECORD_LEN


def decode(data: bytes, table: SessionTable, session: Session, exporter: str,
           received_ns: int, now: float) -> None:
    stats = table.stats
    header = unpack_header(data, V5_HEADER, V5_VERSION, stats)
    if header is None:
        return
    _, count, uptime, secs, nsecs, flow_seq, engine_type, engine_id, sampling = header
    if not 1 <= count <= V5_MAX_RECORDS:
        stats.bad("bad_record_count")
        return
    if len(data) != V5_HEADER.size + count * V5_RECORD_LEN:
        stats.bad("length_mismatch")
        return
    stats.message(exporter, "NETFLOW_V5")
    domain = engine_type << 8 | engine_id
    # Header sampling field: 2 bits mode, 14 bits interval (0 = not sampled).
    ctx = MessageContext("NETFLOW_V5", received_ns, flow_seq, domain, exporter, secs,
                         sys_uptime_ms=uptime, unix_nsecs=nsecs,
                         header_sampling=sampling & 0x3FFF)
    ds = table.domain(session, domain)
    gap = sequence_gap(ds, flow_seq, stats)
    if gap is not None:  # flow_sequence counts flows sent before this packet
        stats.lost(exporter, domain, gap)
        ds.sequence = (flow_seq + count) & 0xFFFFFFFF
    facts = facts_of(ctx, fallback_rate(ds, ctx.header_sampling), ds.sys_init_ms, ds.samplers)
    table.pending.add(LAYOUT, "NETFLOW_V5", data[V5_HEADER.size:], count, facts)
    stats.count_records(ctx, count)
