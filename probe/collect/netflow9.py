"""NetFlow v9 (RFC 3954) packets: header, Template / Options Template / Data FlowSets.

v9 differs from IPFIX in framing (no message length; sysUptime and unix seconds in the header;
the sequence counts packets, not records), in Options Templates (scope and option lengths in
bytes; scope types are v9's own, not IE ids) and in having no enterprise bit or withdrawal.
"""

from __future__ import annotations

import struct

from probe.collect.datasets import data_set, release_held
from probe.collect.session import (
    MessageContext,
    Session,
    SessionTable,
    sequence_gap,
    unpack_header,
)
from probe.wire import FieldSpec, Template, field_spec
from probe.wire.messages import (
    MIN_DATA_SET_ID,
    SET_HEADER,
    V9_HEADER,
    V9_OPTIONS_TEMPLATE_FLOWSET,
    V9_TEMPLATE_FLOWSET,
    V9_VERSION,
)

_U16x2 = struct.Struct(">HH")
_U16x3 = struct.Struct(">HHH")


def decode(data: bytes, table: SessionTable, session: Session, exporter: str,
           received_ns: int, now: float) -> None:
    stats = table.stats
    header = unpack_header(data, V9_HEADER, V9_VERSION, stats)
    if header is None:
        return
    _, _count, uptime, unix_secs, seq, source_id = header
    stats.message(exporter, "NETFLOW_V9")
    ctx = MessageContext("NETFLOW_V9", received_ns, seq, source_id, exporter, unix_secs,
                         sys_uptime_ms=uptime)
    pos, end = V9_HEADER.size, len(data)
    while pos < end:
        if end - pos < 4:
            if any(data[pos:]):
                stats.bad("set_too_short")
            break  # else: padding to a 4-byte boundary
        fs_id, fs_len = SET_HEADER.unpack_from(data, pos)
        if fs_len < 4:
            stats.bad("set_too_short")
            break
        if pos + fs_len > end:
            stats.bad("set_overrun")
            break
        body = data[pos + 4:pos + fs_len]
        pos += fs_len
        if fs_id == V9_TEMPLATE_FLOWSET:
            _templates(body, table, session, source_id)
        elif fs_id == V9_OPTIONS_TEMPLATE_FLOWSET:
            _options_templates(body, table, session, source_id)
        elif fs_id >= MIN_DATA_SET_ID:
            data_set(table, session, ctx, fs_id, body, now)
        else:
            stats.bad("bad_set_id")
    _sequence(table, session, exporter, source_id, seq)


def _sequence(table: SessionTable, session: Session, exporter: str, source_id: int,
              seq: int) -> None:
    """RFC 3954 §5.1: the sequence number counts export packets per source id."""
    ds = table.domain(session, source_id)
    gap = sequence_gap(ds, seq, table.stats, window=1000)
    if gap is None:
        return
    table.stats.lost(exporter, source_id, gap, packets=True)
    ds.sequence = (seq + 1) & 0xFFFFFFFF


def _add(table: SessionTable, session: Session, source_id: int, tid: int,
         fields: list[FieldSpec], scope: int, options: bool, wire: bytes) -> None:
    t = Template(tid, source_id, tuple(fields), scope, is_options=options, wire=wire)
    if t.min_length == 0:
        table.stats.bad("template_zero_length")
        return
    if table.add_template(session, source_id, t):
        release_held(table, session, source_id, t)


def _templates(body: bytes, table: SessionTable, session: Session, source_id: int) -> None:
    stats = table.stats
    pos, end = 0, len(body)
    while end - pos >= 4:
        tid, count = _U16x2.unpack_from(body, pos)
        if tid == 0 and count == 0 and not any(body[pos:]):
            return  # zero padding
        pos += 4
        if tid < MIN_DATA_SET_ID:
            stats.bad("bad_template_id")
            return
        if count == 0:
            stats.bad("template_bad_field_count")
            return
        if count > table.limits.max_fields_per_template:
            stats.bad("template_too_many_fields")
            return
        if end - pos < 4 * count:
            stats.bad("template_overrun")
            return
        wire = body[pos:pos + 4 * count]
        pos += 4 * count
        if table.is_refresh(session, source_id, tid, False, wire) or \
                not table.room_for(session, source_id, tid, count):
            continue
        fields = [_spec(wire, 4 * i) for i in range(count)]
        _add(table, session, source_id, tid, fields, 0, False, wire)


def _spec(body: bytes, pos: int, scope: bool = False) -> FieldSpec:
    ftype, flen = _U16x2.unpack_from(body, pos)
    return field_spec(ftype, flen, 0, scope)


def _options_templates(body: bytes, table: SessionTable, session: Session, source_id: int) -> None:
    stats = table.stats
    pos, end = 0, len(body)
    while end - pos >= 6:
        tid, scope_len, opt_len = _U16x3.unpack_from(body, pos)
        if tid == 0 and not any(body[pos:]):
            return  # zero padding
        pos += 6
        if tid < MIN_DATA_SET_ID:
            stats.bad("bad_template_id")
            return
        if scope_len % 4 or opt_len % 4 or scope_len + opt_len == 0:
            stats.bad("template_bad_field_count")
            return
        if (scope_len + opt_len) // 4 > table.limits.max_fields_per_template:
            stats.bad("template_too_many_fields")
            return
        if end - pos < scope_len + opt_len:
            stats.bad("template_overrun")
            return
        n_scope = scope_len // 4
        wire = body[pos - 4:pos + scope_len + opt_len]  # lengths included: they split scopes
        pos += scope_len + opt_len
        if table.is_refresh(session, source_id, tid, True, wire) or \
                not table.room_for(session, source_id, tid, (scope_len + opt_len) // 4):
            continue
        fields = [_spec(wire, 4 + 4 * i, True) for i in range(n_scope)]
        fields += [_spec(wire, 4 + scope_len + 4 * i) for i in range(opt_len // 4)]
        _add(table, session, source_id, tid, fields, n_scope, True, wire)
