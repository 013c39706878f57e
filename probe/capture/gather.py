"""Vectorised reads of header fields at per-packet offsets inside one capture buffer.

Every read clips its index to the buffer, so a field that lies past a packet's captured end
returns garbage instead of raising; callers mask such rows by comparing offsets with the
packet's end. That keeps the common path free of per-packet branches.
"""

from __future__ import annotations

import numpy as np

_MAC_SHIFTS = np.array([40, 32, 24, 16, 8, 0], dtype=np.uint64)
_ADDR16 = np.arange(16, dtype=np.int64)


def u8(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take(b, idx, mode="clip")


def u16(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Big-endian 16-bit fields as int32 (room for comparisons without overflow)."""
    return (u8(b, idx).astype(np.int32) << 8) | u8(b, idx + 1)


def u32(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    hi = u16(b, idx).astype(np.uint32)
    return (hi << np.uint32(16)) | u16(b, idx + 2).astype(np.uint32)


def mac(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Six octets at ``idx`` as a uint64 with the MAC in the low 48 bits."""
    octets = np.take(b, idx[:, None] + np.arange(6), mode="clip").astype(np.uint64)
    return (octets << _MAC_SHIFTS).sum(axis=1, dtype=np.uint64)


def octets16(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Sixteen octets starting at each ``idx`` as an (n, 16) uint8 array."""
    return np.take(b, idx[:, None] + _ADDR16, mode="clip")
