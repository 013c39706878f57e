"""A mapped value into its destination's kind: what a mapping entry's value becomes.

A mapping entry (an ``ipfix``/``netflowv9`` Template field, or bits of an sFlow sampled
header) yields a column of values; ``converter`` picks, once per entry, how that column turns
into the destination's kind, as goflow2 fills the field: a number (read little-endian if the
entry says so: the field's octets reversed), octets for a declared ``string``/``bytes``
field, an address or a MAC for FlowMessage's address and MAC fields.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import numpy as np

from probe.collect.columns import HEX, INTEGER, IPV4, IPV6, MAC, NUMERIC, Column, per_row, u64
from probe.collect.flows import column_values
from probe.format.proto import ADDRESS_FIELDS, MAC_FIELDS, CustomField

# (the entry's values, rows) -> the destination's column, or None: the destination is left
# as it was (an address field given something that is no address).
Convert = Callable[[Column, int], Column | None]


def octets_of(v: object, size: int) -> bytes:
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v.to_bytes(max(size, (v.bit_length() + 7) // 8, 1), "big")
    return str(v).encode()


def number(little_endian: bool, size: int) -> Convert:
    """Values of ``size`` octets as numbers (reversed octets for ``little_endian``)."""
    order = "little" if little_endian else "big"

    def convert(c: Column, n: int) -> Column | None:
        if c.kind in NUMERIC:
            v = c.data.astype(np.uint64)
            if not little_endian or size == 1:
                return u64(v)
            if size in (2, 4, 8):  # the octets as they were on the wire, read the other way
                return u64(v.astype(f">u{size}").view(f"<u{size}").astype(np.uint64))
        values = [int.from_bytes(octets_of(x, size), order) for x in column_values(c, False)]
        if values and max(values) < 1 << 64:
            return u64(np.asarray(values, dtype=np.uint64))
        return per_row(values)  # type: ignore[arg-type]
    return convert


def address(c: Column, n: int) -> Column | None:
    if c.kind in (IPV4, IPV6):
        return c
    if c.kind in INTEGER and (n == 0 or int(c.data.max()) < 1 << 32):
        return Column(IPV4, c.data.astype(np.uint32))
    if c.kind == HEX and c.data.shape[1] == 4:
        return Column(IPV4, c.data.view(">u4")[:, 0].astype(np.uint32))
    if c.kind == HEX and c.data.shape[1] == 16:
        return Column(IPV6, c.data)
    return None  # no address: the destination is left as it was


def mac(c: Column, n: int) -> Column | None:
    return Column(MAC, c.data.astype(np.uint64)) if c.kind in NUMERIC else None


def octets(size: int) -> Convert:
    """Values as octets (``size`` of them for a number)."""
    def convert(c: Column, n: int) -> Column | None:
        if c.kind == HEX:
            return c
        if c.kind in NUMERIC and size in (1, 2, 4, 8):
            big = c.data.astype(np.uint64).astype(f">u{size}")
            return Column(HEX, big.view(np.uint8).reshape(n, size))
        if c.kind == IPV6:
            return Column(HEX, c.data)
        return per_row([octets_of(v, size) for v in column_values(c, False)], hex_values)
    return convert


def converter(destination: str, custom: dict[str, CustomField], little_endian: bool,
              size: int) -> Convert:
    """How values of ``size`` octets become ``destination``'s."""
    if destination in ADDRESS_FIELDS:
        return address
    if destination in MAC_FIELDS:
        return mac
    if destination in custom and custom[destination].type != "varint":
        return octets(size)
    return number(little_endian, size)


def hex_values(v: object) -> object:
    """A plain value (or a list of them) as a JSON line has it: octets as hex."""
    if isinstance(v, list):
        return [x.hex() if isinstance(x, bytes) else x for x in v]
    return v.hex() if isinstance(v, bytes) else v


def ip_values(v: object) -> object:
    """A plain value (or a list of them) as an address field's JSON has it: 4 or 16 octets
    as the address's text, other octets as hex."""
    if isinstance(v, list):
        return [ip_values(x) for x in v]
    if isinstance(v, bytes) and len(v) in (4, 16):
        return str(ipaddress.ip_address(v))
    return hex_values(v)
