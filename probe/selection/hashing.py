"""The hash functions of RFC 5475 hash-based selection, each over a whole batch at once.

BOB (Appendix A.2, Bob Jenkins' 1996 hash), IPSX (Appendix A.1) and CRC-32 (the IEEE 802.3
CRC of zlib), written from the RFC's description: every packet's input is one row of a uint8
matrix, zero-padded to the widest row, with its length beside it, and the functions run their
rounds on uint32 columns for all rows at once (numpy's uint32 arithmetic wraps as C's does).

The RFC's BOB code declares its 4-byte type ``ub4`` as ``unsigned long``, which is 8 bytes on
today's 64-bit Unix: compiled as printed there, its shifts carry bits above 32 into the next
steps and it returns other values. The RFC's text says what is meant ("a 32-bit number",
"unsigned 4-byte quantities"), and that is what is computed here: every value is 32 bits.
"""

from __future__ import annotations

import numpy as np

GOLDEN_RATIO = 0x9E3779B9  # BOB's built-in parameter (RFC 5475 A.2)
_U32 = np.uint32


def _mix(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """BOB's ``mix(a, b, c)``, in place on uint32 columns."""
    t = np.empty_like(a)
    for x, y, z, shift in ((a, b, c, -13), (b, c, a, 8), (c, a, b, -13),
                           (a, b, c, -12), (b, c, a, 16), (c, a, b, -5),
                           (a, b, c, -3), (b, c, a, 10), (c, a, b, -15)):
        # x -= y; x -= z; x ^= z >> s (or z << s): z is the register updated just before.
        x -= y
        x -= z
        if shift < 0:
            np.right_shift(z, _U32(-shift), out=t)
        else:
            np.left_shift(z, _U32(shift), out=t)
        x ^= t


def bob(keys: np.ndarray, lengths: np.ndarray, initval: int) -> np.ndarray:
    """BOB hash of each row's first ``lengths[i]`` octets (the rest of the row must be zero).

    The key is taken 12 octets at a time as three little-endian words added to a, b and c,
    then mixed; the last 0..11 octets are added the same way except that c's octets move up
    one place, its lowest octet holding the key length. A row whose key is a whole number of
    12-octet blocks still ends with that last round, with no octets left to add.
    """
    n, width = keys.shape
    lengths = lengths.astype(np.int64)
    rounds = int(lengths.max()) // 12 + 1 if n else 1
    padded = np.zeros((n, rounds * 12), dtype=np.uint8)
    padded[:, :min(width, rounds * 12)] = keys[:, :rounds * 12]
    words = padded.view("<u4").reshape(n, rounds, 3).astype(_U32)
    a = np.full(n, GOLDEN_RATIO, dtype=_U32)
    b = a.copy()
    c = np.full(n, initval, dtype=_U32)
    last = lengths // 12  # the round that adds the tail and the length
    for j in range(rounds):
        rows = np.flatnonzero(last >= j) if j > int(last.min(initial=0)) else slice(None)
        ra, rb, rc = a[rows], b[rows], c[rows]
        w = words[rows, j]
        ra += w[:, 0]
        rb += w[:, 1]
        tail = last[rows] == j
        rc += np.where(tail, (w[:, 2] << _U32(8)) + lengths[rows].astype(_U32), w[:, 2])
        _mix(ra, rb, rc)
        a[rows], b[rows], c[rows] = ra, rb, rc
    return c


def ipsx(f1: np.ndarray, f2: np.ndarray, f3: np.ndarray, f4: np.ndarray) -> np.ndarray:
    """IPSX over its four 32-bit inputs; the 16-bit result as uint32 (RFC 5475 A.1)."""
    v1 = (f1 ^ f2).astype(_U32)
    v2 = (f3 ^ f4).astype(_U32)
    h = v1 << _U32(8)
    h ^= v1 >> _U32(4)
    h ^= v1 >> _U32(12)
    h ^= v1 >> _U32(16)
    h ^= v2 << _U32(6)
    h ^= v2 << _U32(10)
    h ^= v2 << _U32(14)
    h ^= v2 >> _U32(7)
    return h & _U32(0xFFFF)


def _crc_table() -> np.ndarray:
    """The reflected CRC-32 table of polynomial 0xEDB88320 (IEEE 802.3, as zlib uses)."""
    t = np.arange(256, dtype=_U32)
    for _ in range(8):
        t = np.where(t & _U32(1), (t >> _U32(1)) ^ _U32(0xEDB88320), t >> _U32(1)).astype(_U32)
    return t


_CRC_TABLE = _crc_table()


def crc32(keys: np.ndarray, lengths: np.ndarray, initval: int) -> np.ndarray:
    """CRC-32 of each row's first ``lengths[i]`` octets, continuing from ``initval`` exactly as
    ``zlib.crc32(key, initval)`` does (``initval`` is the CRC of whatever came before)."""
    n, width = keys.shape
    crc = np.full(n, initval ^ 0xFFFFFFFF, dtype=_U32)
    top = int(lengths.max()) if n else 0
    for j in range(min(width, top)):
        step = _CRC_TABLE[(crc ^ keys[:, j]) & _U32(0xFF)] ^ (crc >> _U32(8))
        crc = np.where(lengths > j, step, crc)
    return crc ^ _U32(0xFFFFFFFF)
