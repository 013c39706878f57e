"""Field encoding: RecordBatch columns to wire bytes, one numpy structured array per Template.

A Template's records all have the same length, so a whole batch is encoded by filling one
big-endian structured array column by column and calling ``tobytes()`` — no per-record Python.
Odd reduced sizes (3, 5, 6, 7 octets) and MAC addresses become ``(n, L)`` byte columns cut from
the big-endian 8-octet value.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from probe.ie import NTP_EPOCH_OFFSET
from probe.wire.fields import FieldSpec

_INTEGER_TYPES = {"unsigned8", "unsigned16", "unsigned32", "unsigned64", "ipv4Address",
                  "dateTimeSeconds", "dateTimeMilliseconds", "boolean"}
# Counters whose reduced-size encoding saturates rather than wraps: a wrapped counter would
# silently under-report, a saturated one is at least visibly at its maximum.
_SATURATING = {"deltaCounter", "totalCounter", "quantity"}
# sysUpTime fields are re-derived from the meta columns on the exporter's millisecond grid.


def wire_dtype(spec: FieldSpec) -> np.dtype:
    """numpy dtype of one field as it sits on the wire."""
    ie, n = spec.ie, spec.length
    t = ie.data_type
    if t in ("ipv6Address", "macAddress", "octetArray"):
        return np.dtype(("u1", (n,)))
    if t in ("dateTimeMicroseconds", "dateTimeNanoseconds"):
        return np.dtype(">u8")
    if t == "float64":
        return np.dtype(">f8" if n == 8 else ">f4")
    if t in _INTEGER_TYPES:
        return np.dtype(f">u{n}") if n in (1, 2, 4, 8) else np.dtype(("u1", (n,)))
    raise ValueError(f"cannot encode IE {ie.name} of type {t}")


def record_dtype(specs: tuple[FieldSpec, ...]) -> np.dtype:
    """Packed (unaligned) structured dtype of one record: its itemsize is the record length."""
    return np.dtype([(f"f{i}", wire_dtype(s)) for i, s in enumerate(specs)])


def us_to_ntp(us: np.ndarray) -> np.ndarray:
    """Microseconds since the Unix epoch to 64-bit NTP time stamps (RFC 7011 §6.1.9).

    §6.1.9 says the low 11 bits of a dateTimeMicroseconds fraction SHOULD be zero, which leaves
    units of 2^-21 s (0.477 µs). The fraction is the first such unit at or after the
    microsecond: less than half a microsecond above it, so a decoder that truncates
    fraction * 1e6 / 2^32 and one that rounds it both get the microsecond back exactly.
    """
    us = np.asarray(us, dtype=np.uint64)
    sec = us // np.uint64(1_000_000) + np.uint64(NTP_EPOCH_OFFSET)
    units = ((us % np.uint64(1_000_000)) << np.uint64(21)) + np.uint64(999_999)
    units //= np.uint64(1_000_000)
    return (sec << np.uint64(32)) | (units << np.uint64(11))


def ns_to_ntp(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds since the Unix epoch to NTP time stamps, the fraction rounded up as in
    ``us_to_ntp`` so that a decoder truncating fraction * 1e9 / 2^32 gets them back."""
    ns = np.asarray(ns, dtype=np.uint64)
    sec = ns // np.uint64(1_000_000_000) + np.uint64(NTP_EPOCH_OFFSET)
    frac = ((ns % np.uint64(1_000_000_000)) << np.uint64(32)) + np.uint64(999_999_999)
    frac //= np.uint64(1_000_000_000)
    return (sec << np.uint64(32)) | frac


def to_wire(values: np.ndarray, spec: FieldSpec) -> np.ndarray:
    """Values of one column (dtype per ``probe.cache.records.column_spec``) ready to assign."""
    ie, n = spec.ie, spec.length
    t = ie.data_type
    if t == "dateTimeMicroseconds":
        return us_to_ntp(values)
    if t == "dateTimeNanoseconds":
        return ns_to_ntp(values)
    if t == "macAddress":
        v = np.asarray(values, dtype=np.uint64).astype(">u8")
        return v.view(np.uint8).reshape(-1, 8)[:, 2:]
    if t in ("ipv6Address", "octetArray") or t.startswith("float"):
        return np.asarray(values)
    full = ie.length or n
    v = np.asarray(values, dtype=np.uint64)
    if n < full:
        if ie.semantics in _SATURATING:
            v = np.minimum(v, np.uint64((1 << (8 * n)) - 1))
        else:
            v = v & np.uint64((1 << (8 * n)) - 1)
    if n in (1, 2, 4, 8):
        return v
    return v.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - n:]


def encode_columns(specs: tuple[FieldSpec, ...], columns: list[np.ndarray], n: int) -> bytes:
    """Encode ``n`` records whose field values are ``columns`` (one per spec, in order)."""
    arr = np.zeros(n, dtype=record_dtype(specs))
    for i, (spec, col) in enumerate(zip(specs, columns, strict=True)):
        arr[f"f{i}"] = to_wire(col, spec)
    return arr.tobytes()


def encode_rows(specs: tuple[FieldSpec, ...], rows: list[Mapping[int, object]]) -> bytes:
    """Encode a few records given as dicts by IE id (options records; not the hot path)."""
    return encode_values(specs, [[r.get(s.ie_id, 0) for s in specs] for r in rows])


def encode_values(specs: tuple[FieldSpec, ...], rows: list[list[object]]) -> bytes:
    """Encode a few records given as values in template order: a template may repeat an IE
    (a selection sequence's selectorIds, a hash selector's ranges)."""
    cols = []
    for i, s in enumerate(specs):
        vals = [r[i] for r in rows]
        t = s.ie.data_type
        if t in ("ipv6Address", "octetArray"):
            col = np.array([list(bytes(v).ljust(s.length, b"\0")[: s.length])  # type: ignore[arg-type]
                            for v in vals], dtype=np.uint8).reshape(len(rows), s.length)
        elif t.startswith("float"):
            col = np.array(vals, dtype=np.float64)
        elif t == "boolean":  # RFC 7011 §6.1.5: 1 true, 2 false
            col = np.array([1 if v else 2 for v in vals], dtype=np.uint64)
        else:
            col = np.array(vals, dtype=np.uint64)
        cols.append(col)
    return encode_columns(specs, cols, len(rows))
