"""Columns: how the collector holds decoded values, many records at a time.

A ``Column`` is one field of n records as one numpy array, with a ``kind`` that says what the
values are and how they are written (see ``probe.collect.flows`` for the JSON line):

======  =====================================  ===========================  ===================
kind    ``data``                               plain value (``raw``)        in a JSON line
======  =====================================  ===========================  ===================
U64     (n,) uint64                            int                          number
I64     (n,) int64                             int                          number
IPV4    (n,) uint32                            int                          "192.0.2.1"
IPV6    (n, 16) uint8                          16 bytes                     "2001:db8::1"
MAC     (n,) uint64                            int                          "00:11:22:33:44:55"
HEX     (n, width) uint8                       bytes                        "0a1b2c" (hex)
TOK     (n,) int32 index into ``values``       ``values[i]``                ``conv(values[i])``
======  =====================================  ===========================  ===================

TOK carries whatever is rare or not a fixed-size number: strings, floats, booleans, values of
variable-length fields, and per-message constants (type, exporter) that repeat for many rows.

A ``Layout`` is what a fixed-length Template compiles to once: a numpy structured dtype over
its records and, per field, how that field's sub-array becomes a Column. A Data Set of such a
Template (or a run of them, joined) is then decoded with one ``np.frombuffer``: no Python per
record. Lengths are the exporter's and untrusted: a length a type cannot have gives a HEX
column of the raw octets instead of an error (as ``probe.collect.values`` does per value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from probe.collect.values import converter, json_converter
from probe.ie import NTP_EPOCH_OFFSET
from probe.wire import VARIABLE, FieldSpec

U64, I64, IPV4, IPV6, MAC, HEX, TOK = range(7)
NUMERIC = frozenset({U64, I64, IPV4, MAC})  # a plain int per row (not bytes or text)
INTEGER = frozenset({U64, I64})  # counters, times, ids: arithmetic applies


def _identity(v: object) -> object:
    return v


@dataclass(slots=True)
class Column:
    kind: int
    data: np.ndarray
    values: list[object] | None = None  # TOK: the plain values the indexes point at
    conv: Callable[[object], object] = field(default=_identity)  # TOK: plain -> JSON value

    def __len__(self) -> int:
        return len(self.data)

    def take(self, idx: np.ndarray) -> Column:
        return Column(self.kind, self.data[idx], self.values, self.conv)


def tok(values: list[object], index: np.ndarray, conv: Callable[[object], object] = _identity
        ) -> Column:
    return Column(TOK, np.ascontiguousarray(index, dtype=np.int32), values, conv)


def per_row(values: list[object], conv: Callable[[object], object] = _identity) -> Column:
    """A TOK column with one value per row (the slow, general path)."""
    return tok(values, np.arange(len(values), dtype=np.int32), conv)


def const(value: object, n: int, conv: Callable[[object], object] = _identity) -> Column:
    return tok([value], np.zeros(n, dtype=np.int32), conv)


def u64(data: np.ndarray) -> Column:
    return Column(U64, np.ascontiguousarray(data, dtype=np.uint64))


def i64(data: np.ndarray) -> Column:
    return Column(I64, np.ascontiguousarray(data, dtype=np.int64))


def concat(cols: list[Column]) -> Column:
    """One column of several (same kind), e.g. the runs of a batch."""
    first = cols[0]
    if len(cols) == 1:
        return first
    if first.kind != TOK:
        return Column(first.kind, np.concatenate([c.data for c in cols]))
    values: list[object] = []
    idx = []
    for c in cols:
        idx.append(c.data + len(values))
        values.extend(c.values or ())
    return tok(values, np.concatenate(idx), first.conv)


def _be_uint(octets: np.ndarray) -> np.ndarray:
    """(n, L) big-endian octets, L <= 8 -> (n,) uint64."""
    out = np.zeros(len(octets), dtype=np.uint64)
    for i in range(octets.shape[1]):
        out = (out << np.uint64(8)) | octets[:, i].astype(np.uint64)
    return out


# ------------------------------------------------------------------ one field -> a Column
Maker = Callable[[np.ndarray], Column]


def _hex(a: np.ndarray) -> Column:
    return Column(HEX, np.ascontiguousarray(a))


def _unsigned(a: np.ndarray) -> Column:
    return u64(a if a.ndim == 1 else _be_uint(a))


def _signed(length: int) -> Maker:
    def make(a: np.ndarray) -> Column:
        if a.ndim == 1:
            return i64(a)
        v = _be_uint(a)
        shift = np.uint64(64 - 8 * length)
        return i64(((v << shift).view(np.int64)) >> np.int64(64 - 8 * length))
    return make


def _ipv4(a: np.ndarray) -> Column:
    return Column(IPV4, np.ascontiguousarray(a, dtype=np.uint32))


def _ipv6(a: np.ndarray) -> Column:
    return Column(IPV6, np.ascontiguousarray(a))


def _mac(a: np.ndarray) -> Column:
    return Column(MAC, _be_uint(a))


def _ntp(scale: int) -> Maker:
    # RFC 7011 §6.1.9: NTP format; rounding to nearest undoes an encoder's truncation.
    def make(a: np.ndarray) -> Column:
        v = a.astype(np.uint64)
        sec = (v >> np.uint64(32)).astype(np.int64) - NTP_EPOCH_OFFSET
        frac = v & np.uint64(0xFFFFFFFF)
        sub = (frac * np.uint64(scale) + np.uint64(1 << 31)) >> np.uint64(32)
        return i64(sec * scale + sub.astype(np.int64))
    return make


def _per_value(name: str, data_type: str) -> Maker:
    conv, out = converter(data_type), json_converter(name)

    def make(a: np.ndarray) -> Column:
        flat = np.ascontiguousarray(a).reshape(len(a), -1)
        return per_row([conv(bytes(r)) for r in flat], out)
    return make


_UNSIGNED_TYPES = frozenset({"unsigned8", "unsigned16", "unsigned32", "unsigned64",
                             "dateTimeSeconds", "dateTimeMilliseconds", ""})
_SIGNED_TYPES = frozenset({"signed8", "signed16", "signed32", "signed64"})


def field_plan(name: str, data_type: str, length: int) -> tuple[str | tuple, Maker]:
    """The numpy format of one fixed-length field and how its sub-array becomes a Column."""
    octets: tuple = ("u1", (length,))
    if data_type in _UNSIGNED_TYPES:
        if length in (1, 2, 4, 8):
            return f">u{length}", _unsigned
        return octets, (_unsigned if length <= 8 else _hex)
    if data_type in _SIGNED_TYPES:
        if length in (1, 2, 4, 8):
            return f">i{length}", _signed(length)
        return octets, (_signed(length) if 0 < length <= 8 else _hex)
    if data_type == "ipv4Address" and length == 4:
        return ">u4", _ipv4
    if data_type == "ipv6Address" and length == 16:
        return octets, _ipv6
    if data_type == "macAddress" and length == 6:
        return octets, _mac
    if data_type == "dateTimeMicroseconds" and length == 8:
        return ">u8", _ntp(1_000_000)
    if data_type == "dateTimeNanoseconds" and length == 8:
        return ">u8", _ntp(1_000_000_000)
    if data_type in ("dateTimeMicroseconds", "dateTimeNanoseconds"):
        return octets, (_unsigned if length <= 8 else _hex)
    if data_type in ("float32", "float64", "boolean", "string"):
        return octets, _per_value(name, data_type)
    # octetArray, anything unknown, and an address of a length its type cannot have: the
    # octets, as probe.collect.values does
    return octets, _hex


@dataclass(frozen=True, slots=True)
class Layout:
    """A fixed-length Template compiled: records of ``record_len`` octets as ``dtype``."""

    names: tuple[str, ...]
    record_len: int
    dtype: np.dtype
    makers: tuple[Maker, ...]

    def columns(self, buf: bytes) -> list[Column]:
        """The Columns of every whole record in ``buf`` (a multiple of ``record_len``)."""
        arr = np.frombuffer(buf, dtype=self.dtype)
        return [make(arr[f"f{i}"]) for i, make in enumerate(self.makers)]


@lru_cache(maxsize=1024)
def compile_layout(specs: tuple[FieldSpec, ...], names: tuple[str, ...]) -> Layout | None:
    """The Layout of a Template whose fields all have a fixed length (None: some vary).

    Cached by the specifiers: the exporters a collector hears mostly share a few Templates.
    """
    if any(s.length == VARIABLE for s in specs):
        return None
    fmts, offsets, makers = [], [], []
    off = 0
    for s, name in zip(specs, names, strict=True):
        fmt, make = field_plan(name, s.data_type, s.length)
        fmts.append(fmt)
        offsets.append(off)
        makers.append(make)
        off += s.length
    dtype = np.dtype({"names": [f"f{i}" for i in range(len(specs))], "formats": fmts,
                      "offsets": offsets, "itemsize": max(off, 1)})
    return Layout(names, off, dtype, tuple(makers))


# ------------------------------------------------------------------ variable-length records
_INT_KIND = {"ipv4Address": IPV4, "macAddress": MAC}


def _numbers_or_values(name: str, data_type: str, values: list[object]) -> Column:
    """A variable-length field whose every value came out a number is a number column (so
    times, counters and ids still count); otherwise one plain value per row."""
    if values and all(type(v) is int for v in values):
        lo, hi = min(values), max(values)  # type: ignore[type-var]
        kind = _INT_KIND.get(data_type)
        if kind == IPV4 and hi < 1 << 32:
            return Column(IPV4, np.asarray(values, dtype=np.uint32))
        if kind == MAC and hi < 1 << 48:
            return Column(MAC, np.asarray(values, dtype=np.uint64))
        if kind is None and lo >= 0 and hi < 1 << 64:
            return u64(np.asarray(values, dtype=np.uint64))
        if kind is None and lo >= -(1 << 63) and hi < 1 << 63:
            return i64(np.asarray(values, dtype=np.int64))
    return per_row(values, json_converter(name))


def variable_columns(specs: tuple[FieldSpec, ...], names: tuple[str, ...],
                     rows: list[list[bytes]]) -> list[Column]:
    """Columns of records whose fields were cut out one by one (a Template with a
    variable-length field): fixed-length fields go through the same makers as a Layout's,
    variable-length ones become one plain value per row."""
    out = []
    for i, (s, name) in enumerate(zip(specs, names, strict=True)):
        cells = [r[i] for r in rows]
        if s.length == VARIABLE:
            conv = converter(s.data_type)
            out.append(_numbers_or_values(name, s.data_type, [conv(c) for c in cells]))
            continue
        fmt, make = field_plan(name, s.data_type, s.length)
        dtype = np.dtype([("f", fmt)]) if s.length else None
        if dtype is None or s.length == 0:
            out.append(make(np.zeros((len(rows), 0), dtype=np.uint8)))
            continue
        out.append(make(np.frombuffer(b"".join(cells), dtype=dtype)["f"]))
    return out
