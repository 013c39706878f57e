"""Templates and the walk over a Data Set's records (shared by NetFlow v9 and IPFIX).

A Template is compiled once when it arrives (field offsets for all-fixed layouts), so each data
record costs one dict comprehension. Lengths are untrusted: a record that would run past its set
stops the walk with a reason instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probe.collect.values import VARIABLE, FieldSpec


@dataclass(frozen=True, slots=True)
class Template:
    template_id: int
    fields: tuple[FieldSpec, ...]
    scope_count: int = 0  # Options Templates: the first scope_count fields are scopes
    is_options: bool = False
    names: tuple[str, ...] = field(default=(), compare=False)
    fixed_length: int | None = field(default=None, compare=False)  # None: has variable fields
    min_length: int = field(default=0, compare=False)  # smallest possible record
    wire: bytes = field(default=b"", compare=False)  # the field specifiers as received



def make_template(template_id: int, fields: tuple[FieldSpec, ...], scope_count: int = 0,
                  is_options: bool = False, wire: bytes = b"") -> Template:
    """Compile a template; a repeated IE gets ``name#2``, ``name#3`` so no value is lost."""
    seen: dict[str, int] = {}
    names: list[str] = []
    for f in fields:
        n = seen.get(f.name, 0) + 1
        seen[f.name] = n
        names.append(f.name if n == 1 else f"{f.name}#{n}")
    variable = any(f.length == VARIABLE for f in fields)
    fixed = None if variable else sum(f.length for f in fields)
    min_len = sum(1 if f.length == VARIABLE else f.length for f in fields)
    return Template(template_id, fields, scope_count, is_options or scope_count > 0, tuple(names),
                    fixed, min_len, wire)


def decode_records(t: Template, body: bytes) -> tuple[list[dict[str, object]], str | None]:
    """All records of one Data Set body (set header stripped) -> (records, problem or None).

    Trailing bytes shorter than the smallest record are padding (RFC 7011 §3.3.1).
    """
    if t.min_length <= 0:
        return [], "template_zero_length"
    if t.fixed_length is not None:
        return _decode_fixed(t, body), None
    return _decode_variable(t, body)


def _decode_fixed(t: Template, body: bytes) -> list[dict[str, object]]:
    size = t.fixed_length or 0
    count = len(body) // size
    plan = []
    off = 0
    for name, f in zip(t.names, t.fields, strict=True):
        plan.append((name, f.convert, off, off + f.length))
        off += f.length
    out = []
    for base in range(0, count * size, size):
        out.append({name: conv(body[base + a:base + b]) for name, conv, a, b in plan})
    return out


def _decode_variable(t: Template, body: bytes) -> tuple[list[dict[str, object]], str | None]:
    out: list[dict[str, object]] = []
    pos = 0
    end = len(body)
    pairs = tuple(zip(t.names, t.fields, strict=True))
    while end - pos >= t.min_length:
        rec: dict[str, object] = {}
        for name, f in pairs:
            n = f.length
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
            rec[name] = f.convert(body[pos:pos + n])
            pos += n
        out.append(rec)
    return out, None
