"""Vectorised reads of headers at per-packet offsets inside one capture buffer.

A header is read for the whole batch as a *window*: one row of ``width`` octets per packet,
taken with a single fancy index into an overlapping view of the buffer (one C loop, no
per-field gathers); fields are then column slices of that window. The buffer is read in place;
a window that runs past its end reads a zero-padded copy of the last octets, and window starts
are clipped to the buffer, so a header lying past a packet's captured end yields garbage
instead of raising; callers mask such rows by comparing offsets with the packet's end.
"""

from __future__ import annotations

import numpy as np

# Widest window any stage reads (the IPv6 fixed header is 40 octets).
PAD = 64


class Buffer:
    """The batch's packet bytes, read in place; windows that would run past the end are read
    from a zero-padded copy of the last ``PAD`` octets (copying the whole buffer to pad it was
    a memcpy of every captured octet)."""

    __slots__ = ("_padded", "_tail", "_tail_start", "_windows", "data")

    def __init__(self, buf: bytes) -> None:
        self.data = np.frombuffer(buf, dtype=np.uint8)
        size = self.data.shape[0]
        self._tail_start = size - min(size, PAD)
        self._tail = np.zeros(size - self._tail_start + PAD, dtype=np.uint8)
        self._tail[:size - self._tail_start] = self.data[self._tail_start:]
        self._windows: dict[tuple[int, bool], np.ndarray] = {}
        self._padded: np.ndarray | None = None

    def _items(self, data: np.ndarray, width: int, tail: bool) -> np.ndarray:
        # Overlapping ``width``-octet items, one per offset: a fancy index then copies each row
        # as one item, twice as fast as indexing a (size, width) octet view
        # (sliding_window_view), which copies octet by octet.
        view = self._windows.get((width, tail))
        if view is None:
            view = np.ndarray(buffer=data, dtype=f"V{width}",
                              shape=(data.shape[0] - width + 1,), strides=(1,))
            self._windows[(width, tail)] = view
        return view

    def window(self, start: np.ndarray, width: int) -> np.ndarray:
        """``width`` octets from each row's ``start``, as an (n, width) uint8 array."""
        size = self.data.shape[0]
        if size >= width:
            rows = self._items(self.data, width, False)[np.clip(start, 0, size - width)]
            late = np.flatnonzero(start > size - width)
        else:  # a buffer shorter than one window: every row reads the padded tail
            rows = np.empty(start.shape[0], dtype=f"V{width}")
            late = np.arange(start.shape[0])
        if late.shape[0]:
            tail = self._items(self._tail, width, True)
            rows[late] = tail[np.clip(start[late] - self._tail_start, 0, tail.shape[0] - 1)]
        return rows.view(np.uint8).reshape(-1, width)


    def section(self, start: np.ndarray, have: np.ndarray, width: int) -> np.ndarray:
        """``width`` octets from each row's ``start``, zero from its ``have``-th on: a packet
        section of a PSAMP report. Sections are wider than the tail ``window`` pads, so they
        read a copy of the buffer padded by the widest (made once per batch, only when a
        report asks for sections)."""
        n = start.shape[0]
        if width == 0 or n == 0:
            return np.zeros((n, width), np.uint8)
        size = self.data.shape[0]
        if self._padded is None or self._padded.shape[0] < size + width:
            self._padded = np.zeros(size + max(width, PAD), np.uint8)
            self._padded[:size] = self.data
        view = np.ndarray(buffer=self._padded, dtype=f"V{width}",
                          shape=(self._padded.shape[0] - width + 1,), strides=(1,))
        rows = view[np.clip(start, 0, size)].view(np.uint8).reshape(n, width)
        short = np.flatnonzero(have < width)  # zero what the packet does not have
        if short.shape[0]:
            cut = rows[short]
            cut[np.arange(width) >= have[short, None]] = 0
            rows[short] = cut
        return rows


def be16(window: np.ndarray, col: int) -> np.ndarray:
    """Big-endian 16-bit field at column ``col`` as int32 (room for arithmetic)."""
    return (window[:, col].astype(np.int32) << 8) | window[:, col + 1]


def be32(window: np.ndarray, col: int) -> np.ndarray:
    """Big-endian 32-bit field at column ``col`` as uint32."""
    return np.ascontiguousarray(window[:, col:col + 4]).view(">u4")[:, 0].astype(np.uint32)


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
