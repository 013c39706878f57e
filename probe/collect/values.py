"""Value decoding: wire bytes of one field -> a plain Python value, by the IE's data type.

Every converter accepts any byte length, because the length comes from a Template the exporter
wrote and is therefore untrusted: a length the IE's type cannot have is decoded as raw bytes
instead of raising. Values are the same plain numbers a ``RecordBatch`` row holds (IPv4 as int,
IPv6 as 16 bytes, MAC as int, times as integer counts in the IE's unit since the Unix epoch), so
``replay --verify`` can compare them with the cache's records directly.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from functools import lru_cache

from probe.ie import NTP_EPOCH_OFFSET, by_name

Converter = Callable[[bytes], object]

_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")


def _unsigned(b: bytes) -> object:
    # Reduced-size encoding (RFC 7011 §6.2): any length up to the type's full size.
    return int.from_bytes(b, "big") if len(b) <= 8 else bytes(b)


def _signed(b: bytes) -> object:
    return int.from_bytes(b, "big", signed=True) if 0 < len(b) <= 8 else bytes(b)


def _float(b: bytes) -> object:
    if len(b) == 4:
        return float(_F32.unpack(b)[0])
    if len(b) == 8:
        return float(_F64.unpack(b)[0])
    return bytes(b)


def _boolean(b: bytes) -> object:
    # RFC 7011 §6.1.5: 1 = true, 2 = false; anything else is kept as the number it is.
    if len(b) == 1 and b[0] in (1, 2):
        return b[0] == 1
    return _unsigned(b)


def _ipv4(b: bytes) -> object:
    return int.from_bytes(b, "big") if len(b) == 4 else bytes(b)


def _ipv6(b: bytes) -> object:
    return bytes(b)


def _mac(b: bytes) -> object:
    return int.from_bytes(b, "big") if len(b) == 6 else bytes(b)


def _string(b: bytes) -> object:
    return bytes(b).decode("utf-8", errors="replace")


def _octets(b: bytes) -> object:
    return bytes(b)


def _ntp_parts(b: bytes) -> tuple[int, int] | None:
    if len(b) != 8:
        return None
    return int.from_bytes(b[:4], "big"), int.from_bytes(b[4:], "big")


def _ntp_micro(b: bytes) -> object:
    # RFC 7011 §6.1.9: NTP format; rounding to nearest undoes an encoder's truncation.
    parts = _ntp_parts(b)
    if parts is None:
        return _unsigned(b)
    sec, frac = parts
    return (sec - NTP_EPOCH_OFFSET) * 1_000_000 + ((frac * 1_000_000 + (1 << 31)) >> 32)


def _ntp_nano(b: bytes) -> object:
    parts = _ntp_parts(b)
    if parts is None:
        return _unsigned(b)
    sec, frac = parts
    return (sec - NTP_EPOCH_OFFSET) * 1_000_000_000 + ((frac * 1_000_000_000 + (1 << 31)) >> 32)


_CONVERTERS: dict[str, Converter] = {
    "unsigned8": _unsigned, "unsigned16": _unsigned, "unsigned32": _unsigned,
    "unsigned64": _unsigned, "signed8": _signed, "signed16": _signed, "signed32": _signed,
    "signed64": _signed, "float32": _float, "float64": _float, "boolean": _boolean,
    "macAddress": _mac, "ipv4Address": _ipv4, "ipv6Address": _ipv6, "string": _string,
    "octetArray": _octets, "dateTimeSeconds": _unsigned, "dateTimeMilliseconds": _unsigned,
    "dateTimeMicroseconds": _ntp_micro, "dateTimeNanoseconds": _ntp_nano,
}

def converter(data_type: str) -> Converter:
    """How a field of this abstract data type becomes a value (raw bytes when unknown: "")."""
    return _CONVERTERS.get(data_type, _octets) if data_type else _unsigned


def mac_text(v: int) -> str:
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def ipv6_text(b: bytes) -> str:
    """RFC 5952 text, as Python 3.11's ``ipaddress`` writes it (the longest run of two or more
    zero groups, the first of equal ones, becomes ``::``), also for IPv4-mapped addresses,
    which later Pythons write in dotted form: the C renderer writes the same."""
    if len(b) != 16:
        return b.hex()
    groups = [int.from_bytes(b[i:i + 2], "big") for i in range(0, 16, 2)]
    best, best_len, cur, cur_len = -1, 0, -1, 0
    for i, g in enumerate(groups):
        if g == 0:
            if cur < 0:
                cur, cur_len = i, 0
            cur_len += 1
            if cur_len > best_len:
                best, best_len = cur, cur_len
        else:
            cur = -1
    text = [f"{g:x}" for g in groups]
    if best_len < 2:
        return ":".join(text)
    return ":".join(text[:best]) + "::" + ":".join(text[best + best_len:])


def _json_plain(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN / infinity
    return value


def _json_ipv4(value: object) -> object:
    return ipv4_text(value) if isinstance(value, int) else _json_plain(value)


def _json_ipv6(value: object) -> object:
    return ipv6_text(bytes(value)) if isinstance(value, bytes | bytearray) else _json_plain(value)


def _json_mac(value: object) -> object:
    return mac_text(value) if isinstance(value, int) and not isinstance(value, bool) \
        else _json_plain(value)


_JSON_BY_TYPE: dict[str, Callable[[object], object]] = {
    "ipv4Address": _json_ipv4, "ipv6Address": _json_ipv6, "macAddress": _json_mac,
}


@lru_cache(maxsize=4096)
def json_converter(name: str) -> Callable[[object], object]:
    """How the value of field ``name`` is written in a JSON line (addresses as text...)."""
    ie = by_name(name.split("#", 1)[0])
    return _JSON_BY_TYPE.get(ie.data_type, _json_plain) if ie is not None else _json_plain


def ipv4_text(v: int) -> str:
    return f"{(v >> 24) & 255}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
