"""The walk over a Data Set's records with its Template (shared by NetFlow v9 and IPFIX).

A Template (``probe.wire.Template``) knows when it arrives whether its records are all of one
length, so each data record costs one dict comprehension. Lengths are untrusted: a record that
would run past its set stops the walk with a reason instead of raising.
"""

from __future__ import annotations

from probe.collect.values import converter
from probe.wire import VARIABLE, Template


def decode_records(t: Template, body: bytes) -> tuple[list[dict[str, object]], str | None]:
    """All records of one Data Set body (set header stripped) -> (records, problem or None).

    Trailing bytes shorter than the smallest record are padding (RFC 7011 §3.3.1).
    """
    if t.min_length <= 0:
        return [], "template_zero_length"
    if t.record_len is not None:
        return _decode_fixed(t, body), None
    return _decode_variable(t, body)


def _decode_fixed(t: Template, body: bytes) -> list[dict[str, object]]:
    size = t.record_len or 0
    count = len(body) // size
    plan = []
    off = 0
    for name, f in zip(t.names, t.specs, strict=True):
        plan.append((name, converter(f.data_type), off, off + f.length))
        off += f.length
    out = []
    for base in range(0, count * size, size):
        out.append({name: conv(body[base + a:base + b]) for name, conv, a, b in plan})
    return out


def _decode_variable(t: Template, body: bytes) -> tuple[list[dict[str, object]], str | None]:
    out: list[dict[str, object]] = []
    pos = 0
    end = len(body)
    pairs = tuple((name, f.length, converter(f.data_type))
                  for name, f in zip(t.names, t.specs, strict=True))
    while end - pos >= t.min_length:
        rec: dict[str, object] = {}
        for name, length, convert in pairs:
            n = length
            if n == VARIABLE:
                # RFC 7011 §7: one length octet, or 255 followed by a two-octet length.
                if pos >= end:
                    return out, "field_length_overrun"
                n = body[pos]
                pos += 1
                if n == 255:
                    if pos + 2 > end:
                        return out, "field_length_overrun"
                    n = int.from_bytes(body[pos:pos + 2], "big")
                    pos += 2
            if pos + n > end:
                return out, "field_length_overrun"
            rec[name] = convert(body[pos:pos + n])
            pos += n
        out.append(rec)
    return out, None
