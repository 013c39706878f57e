"""IPFIX (RFC 7011) messages: header, Template / Options Template / Data Sets, withdrawals.

Every length is checked before it is used; a bad set stops the message (what follows cannot be
located), a bad template record stops its set. Problems are counted by reason.
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
    IPFIX_HEADER,
    IPFIX_OPTIONS_TEMPLATE_SET,
    IPFIX_TEMPLATE_SET,
    IPFIX_VERSION,
    MIN_DATA_SET_ID,
    SET_HEADER,
)

_U16 = struct.Struct(">H")
_U16x2 = struct.Struct(">HH")
_U32 = struct.Struct(">I")


def decode(data: bytes, table: SessionTable, session: Session, exporter: str,
           received_ns: int, now: float) -> None:
    stats = table.stats
    header = unpack_header(data, IPFIX_HEADER, IPFIX_VERSION, stats)
    if header is None:
        return
    _, length, export_secs, seq, domain = header
    if length != len(data):
        stats.bad("length_mismatch")
        return
    stats.message(exporter, "IPFIX")
    ctx = MessageContext("IPFIX", received_ns, seq, domain, exporter, export_secs)
    counted: int | None = 0
    pos = IPFIX_HEADER.size
    while pos < length:
        if length - pos < 4:
            stats.bad("set_too_short")
            counted = None
            break
        set_id, set_len = SET_HEADER.unpack_from(data, pos)
        if set_len < 4:
            stats.bad("set_too_short")
            counted = None
            break
        if pos + set_len > length:
            stats.bad("set_overrun")
            counted = None
            break
        body = data[pos + 4:pos + set_len]
        pos += set_len
        if set_id in (IPFIX_TEMPLATE_SET, IPFIX_OPTIONS_TEMPLATE_SET):
            _template_set(body, set_id == IPFIX_OPTIONS_TEMPLATE_SET, table, session, domain)
        elif set_id >= MIN_DATA_SET_ID:
            n = data_set(table, session, ctx, set_id, body, now)
            counted = None if n is None or counted is None else counted + n
        else:
            stats.bad("bad_set_id")
    _sequence(table, session, exporter, domain, seq, counted)


def _sequence(table: SessionTable, session: Session, exporter: str, domain: int, seq: int,
              counted: int | None) -> None:
    """RFC 7011 §3.1: the sequence number counts data records sent before this message."""
    ds = table.domain(session, domain)
    gap = sequence_gap(ds, seq, table.stats)
    if gap is None:
        return
    table.stats.lost(exporter, domain, gap)
    # A held (not yet decodable) data set has an unknown record count: resynchronise next time.
    ds.sequence = None if counted is None else (seq + counted) & 0xFFFFFFFF


def _template_set(body: bytes, options: bool, table: SessionTable, session: Session,
                  domain: int) -> None:
    stats = table.stats
    pos, end = 0, len(body)
    while end - pos >= 4:
        tid, count = _U16x2.unpack_from(body, pos)
        pos += 4
        if count == 0:  # withdrawal (RFC 7011 §8.1) or padding
            if tid == (IPFIX_OPTIONS_TEMPLATE_SET if options else IPFIX_TEMPLATE_SET):
                table.withdraw(session, domain, None, options)
            elif tid >= MIN_DATA_SET_ID:
                table.withdraw(session, domain, tid, options)
            elif tid == 0 and not any(body[pos - 4:]):
                return  # zero padding
            else:
                stats.bad("bad_template_id")
                return
            continue
        if tid < MIN_DATA_SET_ID:
            stats.bad("bad_template_id")
            return
        scope = 0
        if options:
            if end - pos < 2:
                stats.bad("template_overrun")
                return
            (scope,) = _U16.unpack_from(body, pos)
            pos += 2
            if scope == 0 or scope > count:
                stats.bad("template_bad_scope_count")
                return
        if count > table.limits.max_fields_per_template:
            stats.bad("template_too_many_fields")
            return
        start = pos
        room = table.room_for(session, domain, tid, count)
        fields: list[FieldSpec] = []
        for _ in range(count):
            if end - pos < 4:
                stats.bad("template_overrun")
                return
            ie, flen = _U16x2.unpack_from(body, pos)
            pos += 4
            pen = 0
            if ie & 0x8000:  # enterprise bit: a Private Enterprise Number follows
                if end - pos < 4:
                    stats.bad("template_overrun")
                    return
                (pen,) = _U32.unpack_from(body, pos)
                pos += 4
                ie &= 0x7FFF
            if room:
                fields.append(field_spec(ie, flen, pen))
        wire = body[start - 2 if options else start:pos]
        if not room or table.is_refresh(session, domain, tid, options, wire):
            continue
        t = Template(tid, domain, tuple(fields), scope, is_options=options, wire=wire)
        if t.min_length == 0:
            stats.bad("template_zero_length")
            continue
        if table.add_template(session, domain, t):
            release_held(table, session, domain, t)
