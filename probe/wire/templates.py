"""Templates (RFC 7011 §3.4, RFC 3954 §5.2) and their records in Template Sets.

A Template is fixed by its id, observation domain, field specifiers and scope count. The
exporter's registry hands out ids from ``FIRST_TEMPLATE_ID`` per domain; the collector builds
one from every Template record it accepts. ``names`` are the record fields' names: the cache
layout's IE names on the exporting side, and on the collecting side the fields' names with a
repeated IE written ``name#2``, ``name#3`` so that no value is lost.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from probe.wire.fields import VARIABLE, FieldSpec

FIRST_TEMPLATE_ID = 256  # ids below are set ids (RFC 7011 §3.4.1)

# RFC 3954's ICMP_TYPE (32) is type * 256 + code for either IP version; v9 collectors (nfdump)
# know no IPv6 variant, so IPFIX's icmpTypeCodeIPv6 (139) goes out as 32 in v9 templates.
V9_FIELD_TYPE = {139: 32}
_U16x2 = struct.Struct(">HH")


@dataclass(frozen=True, slots=True)
class Template:
    template_id: int
    domain: int
    specs: tuple[FieldSpec, ...]
    scope_count: int = 0  # Options Templates: the first scope_count fields are scopes
    names: tuple[str, ...] = field(default=(), compare=False)  # see the module doc
    # An Options Template (a NetFlow v9 one may have no scope fields); scope_count > 0 is one.
    is_options: bool = field(default=False, kw_only=True)
    wire: bytes = field(default=b"", compare=False, kw_only=True)  # field specifiers received
    record_len: int | None = field(init=False, compare=False)  # None: variable-length fields
    min_length: int = field(init=False, compare=False)  # the smallest record possible

    def __post_init__(self) -> None:
        if self.scope_count > 0:
            object.__setattr__(self, "is_options", True)
        if not self.names:
            object.__setattr__(self, "names", unique_names(self.specs))
        variable = any(s.length == VARIABLE for s in self.specs)
        object.__setattr__(self, "record_len",
                           None if variable else sum(s.length for s in self.specs))
        object.__setattr__(self, "min_length",
                           sum(1 if s.length == VARIABLE else s.length for s in self.specs))


def unique_names(specs: tuple[FieldSpec, ...]) -> tuple[str, ...]:
    """The fields' names, a repeated one numbered from its second occurrence (``name#2``)."""
    seen: dict[str, int] = {}
    names: list[str] = []
    for s in specs:
        n = seen.get(s.name, 0) + 1
        seen[s.name] = n
        names.append(s.name if n == 1 else f"{s.name}#{n}")
    return tuple(names)


def _specifiers(t: Template, v9: bool) -> bytes:
    out = bytearray()
    for s in t.specs:
        if s.enterprise:
            if v9:
                raise ValueError("NetFlow v9 cannot carry enterprise-specific IEs")
            out += struct.pack(">HHI", s.ie_id | 0x8000, s.length, s.enterprise)
        else:
            out += _U16x2.pack(V9_FIELD_TYPE.get(s.ie_id, s.ie_id) if v9 else s.ie_id,
                               s.length)
    return bytes(out)


def template_record(t: Template, version: int) -> bytes:
    """The Template record (IPFIX, ``version`` 10) or template FlowSet record (NetFlow v9).

    IPFIX Options Template records carry the field count and the scope field count (RFC 7011
    §3.4.2.2); v9 ones the byte lengths of the scope and option specifiers (RFC 3954 §6.1).
    """
    v9 = version == 9
    if t.is_options and v9:
        scope, opts = t.specs[: t.scope_count], t.specs[t.scope_count:]
        return struct.pack(">HHH", t.template_id, 4 * len(scope), 4 * len(opts)) + \
            _specifiers(t, True)
    if t.is_options:
        head = struct.pack(">HHH", t.template_id, len(t.specs), t.scope_count)
    else:
        head = _U16x2.pack(t.template_id, len(t.specs))
    return head + _specifiers(t, v9)


def withdrawal_record(t: Template) -> bytes:
    """An IPFIX Template Withdrawal record (RFC 7011 §8.1): the id and a field count of 0."""
    return _U16x2.pack(t.template_id, 0)
