"""NetFlow v5 packets: a 24-byte header and 1..30 fixed 48-byte IPv4 records.

Records are decoded into IE names (the raw mapping) so v5, v9 and IPFIX flows look alike.
"""

from __future__ import annotations

from probe.collect.records import Record, build_flow
from probe.collect.session import (
    MessageContext,
    Session,
    SessionTable,
    sequence_gap,
    unpack_header,
)
from probe.wire.messages import (
    V5_HEADER,
    V5_IE_NAMES,
    V5_MAX_RECORDS,
    V5_RECORD,
    V5_RECORD_LEN,
    V5_VERSION,
)


def decode(data: bytes, table: SessionTable, session: Session, exporter: str,
           received_ns: int, now: float) -> list[Record]:
    stats = table.stats
    header = unpack_header(data, V5_HEADER, V5_VERSION, stats)
    if header is None:
        return []
    _, count, uptime, secs, nsecs, flow_seq, engine_type, engine_id, sampling = header
    if not 1 <= count <= V5_MAX_RECORDS:
        stats.bad("bad_record_count")
        return []
    if len(data) != V5_HEADER.size + count * V5_RECORD_LEN:
        stats.bad("length_mismatch")
        return []
    stats.messages["NETFLOW_V5"] += 1
    domain = engine_type << 8 | engine_id
    # Header sampling field: 2 bits mode, 14 bits interval (0 = not sampled).
    ctx = MessageContext("NETFLOW_V5", received_ns, flow_seq, domain, exporter, secs,
                         sys_uptime_ms=uptime, unix_nsecs=nsecs,
                         header_sampling=sampling & 0x3FFF)
    ds = table.domain(session, domain)
    gap = sequence_gap(ds, flow_seq, stats)
    if gap is not None:  # flow_sequence counts flows sent before this packet
        stats.lost_records += gap
        ds.sequence = (flow_seq + count) & 0xFFFFFFFF
    out = []
    for i in range(count):
        at = V5_HEADER.size + i * V5_RECORD_LEN
        raw: dict[str, object] = dict(zip(V5_IE_NAMES, V5_RECORD.unpack_from(data, at),
                                          strict=True))
        if raw["protocolIdentifier"] == 1:
            # v5 has no ICMP field: exporters put type << 8 | code in the destination port.
            raw["icmpTypeCodeIPv4"] = raw["destinationTransportPort"]
            raw["destinationTransportPort"] = 0
        raw["engineType"], raw["engineId"] = engine_type, engine_id
        out.append(build_flow(ctx, ds, raw))
    stats.records += count
    return out
