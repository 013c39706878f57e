"""The per-record walk over a Data Set with its Template: the path for the rare records.

Flow records of a fixed-length Template never come here: they are decoded as columns, a whole
Data Set at once (``probe.collect.columns``). This walk serves Templates with a variable-length
field (each record must be cut to find the next) and options records (a few, applied to the
domain state at once). Lengths are untrusted: a record that would run past its set stops the
walk with a reason instead of raising.
"""

from __future__ import annotations

from probe.collect.values import converter
from probe.wire import VARIABLE, Template


def cut_records(t: Template, body: bytes) -> tuple[list[list[bytes]], str | None]:
    """Every record of one Data Set body (set header stripped), each as its fields' octets.

    Trailing bytes shorter than the smallest record are padding (RFC 7011 §3.3.1).
    """
    if t.min_length <= 0:
        return [], "template_zero_length"
    lengths = [f.length for f in t.specs]
    out: list[list[bytes]] = []
    if t.record_len is not None:
        size = t.record_len
        for base in range(0, len(body) // size * size, size):
            rec, pos = [], base
            for n in lengths:
                rec.append(body[pos:pos + n])
                pos += n
            out.append(rec)
        return out, None
    pos, end = 0, len(body)
    while end - pos >= t.min_length:
        rec = []
        for n in lengths:
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
            rec.append(body[pos:pos + n])
            pos += n
        out.append(rec)
    return out, None


def decode_records(t: Template, body: bytes) -> tuple[list[dict[str, object]], str | None]:
    """Every record of one Data Set as IE name -> plain value (options records)."""
    rows, problem = cut_records(t, body)
    convs = [(name, converter(f.data_type)) for name, f in zip(t.names, t.specs, strict=True)]
    return [{name: conv(cell) for (name, conv), cell in zip(convs, r, strict=True)}
            for r in rows], problem
