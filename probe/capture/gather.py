"""Vectorised reads of headers at per-packet offsets inside one capture buffer.

A header is read for the whole batch as a *window*: one row of ``width`` octets per packet,
taken with a single fancy index into an overlapping view of the buffer (one C loop, no
per-field gathers); fields are then column slices of that window. The buffer is copied once
with zero padding so a window may run past the last packet, and window starts are clipped to
the buffer, so a header lying past a packet's captured end yields garbage instead of raising;
callers mask such rows by comparing offsets with the packet's end.
"""

from __future__ import annotations

import numpy as np

# Widest window any stage reads (the IPv6 fixed header is 40 octets).
PAD = 64


class Buffer:
    """The batch's packet bytes, padded for windowed reads."""

    __slots__ = ("_windows", "data")

    def __init__(self, buf: bytes) -> None:
        size = len(buf)
        self.data = np.empty(size + PAD, dtype=np.uint8)
        self.data[:size] = np.frombuffer(buf, dtype=np.uint8)
        self.data[size:] = 0
        self._windows: dict[int, np.ndarray] = {}

    def window(self, start: np.ndarray, width: int) -> np.ndarray:
        """``width`` octets from each row's ``start``, as an (n, width) uint8 array."""
        view = self._windows.get(width)
        if view is None:
            # Overlapping ``width``-octet items, one per buffer offset: a fancy index then
            # copies each row as one item, twice as fast as indexing a (size, width) octet
            # view (sliding_window_view), which copies octet by octet.
            view = np.ndarray(buffer=self.data, dtype=f"V{width}",
                              shape=(self.data.shape[0] - width + 1,), strides=(1,))
            self._windows[width] = view
        rows = view[np.clip(start, 0, view.shape[0] - 1)]
        return rows.view(np.uint8).reshape(-1, width)


def be16(window: np.ndarray, col: int) -> np.ndarray:
    """Big-endian 16-bit field at column ``col`` as int32 (room for arithmetic)."""
    return (window[:, col].astype(np.int32) << 8) | window[:, col + 1]


def macs(head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source, destination) MACs from a 16-octet Ethernet window, as uint64 in the low bits.

    Two big-endian words hold octets 0..15: the destination is the top 48 bits of the first,
    the source its low 16 bits followed by the top 32 bits of the second.
    """
    words = head.view(">u8")
    first = words[:, 0].astype(np.uint64)
    second = words[:, 1].astype(np.uint64)
    dst = first >> np.uint64(16)
    src = ((first & np.uint64(0xFFFF)) << np.uint64(32)) | (second >> np.uint64(32))
    return src, dst
