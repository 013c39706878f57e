"""The flow table: cached flows as parallel arrays indexed by slot, and a dict key -> slot.

Keeping flows as columns lets a cache update every flow a batch touches with a handful of numpy
scatters, and lets expiry sweeps and LRU searches run over the whole table at numpy speed. The
dict is the only per-flow Python object.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat

import numpy as np

from probe.cache.fields import EXTRACT

# Per-flow state shared by the table and by expired-record chunks: name -> dtype. The extremes
# (min/max TTL and length) are kept only by caches whose layout exports them.
STATE: dict[str, str] = {
    "start": "int64", "end": "int64", "seq": "int64", "packets": "uint64", "octets": "uint64",
    "flags": "uint16", "min_ttl": "uint8", "max_ttl": "uint8", "min_len": "uint32",
    "max_len": "uint32", "version": "uint8",
}

Chunk = dict[str, np.ndarray]  # expired records: STATE columns, "reason", and IE value columns


class FlowTable:
    def __init__(self, value_specs: dict[str, tuple[np.dtype, tuple[int, ...]]],
                 capacity: int = 1024, state: tuple[str, ...] = tuple(STATE)) -> None:
        self.value_specs = value_specs
        self.cap = 0
        self.state: dict[str, np.ndarray] = {k: np.zeros(0, STATE[k]) for k in state}
        self.values: dict[str, np.ndarray] = {
            k: np.zeros((0, *shape), dt) for k, (dt, shape) in value_specs.items()}
        self.used = np.zeros(0, dtype=bool)
        self.keys = np.empty(0, dtype=object)  # slot -> its dict key (bytes) or None
        self.index: dict[bytes, int] = {}
        self.free: list[int] = []
        self._grow(capacity)

    @property
    def live(self) -> int:
        return len(self.index)

    def _grow(self, cap: int) -> None:
        extra = cap - self.cap

        def widen(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a, np.zeros((extra, *a.shape[1:]), a.dtype)])

        self.state = {k: widen(a) for k, a in self.state.items()}
        self.values = {k: widen(a) for k, a in self.values.items()}
        self.used = widen(self.used)
        self.keys = widen(self.keys)
        self.free.extend(range(cap - 1, self.cap - 1, -1))
        self.cap = cap

    def lookup(self, keys: list[bytes]) -> np.ndarray:
        return np.array(list(map(self.index.get, keys, repeat(-1))), dtype=np.int64)

    def insert(self, keys: list[bytes], chunk: Chunk) -> np.ndarray:
        """Store new flows; the caller has made sure the table has room for them."""
        k = len(keys)
        if k > len(self.free):
            self._grow(max(2 * self.cap, self.cap + k))
        slots = np.array(self.free[len(self.free) - k:][::-1], dtype=np.int64)
        del self.free[len(self.free) - k:]
        self.index.update(zip(keys, slots.tolist(), strict=True))
        col = np.empty(k, dtype=object)
        col[:] = keys
        self.keys[slots] = col
        self.used[slots] = True
        self.write(slots, chunk)
        return slots

    def write(self, slots: np.ndarray, chunk: Chunk) -> None:
        for k, a in self.state.items():
            a[slots] = chunk[k]
        for k, a in self.values.items():
            a[slots] = chunk[k]

    def read(self, slots: np.ndarray) -> Chunk:
        out = {k: a[slots] for k, a in self.state.items()}
        out.update({k: a[slots] for k, a in self.values.items()})
        return out

    def remove(self, slots: np.ndarray) -> Chunk:
        """Take flows out of the table, returning their state for the expired records."""
        out = self.read(slots)
        deque(map(self.index.__delitem__, self.keys[slots].tolist()), maxlen=0)
        self.keys[slots] = None
        self.free.extend(slots.tolist())
        self.used[slots] = False
        return out

    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self.used)


def value_specs(names: tuple[str, ...]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """dtype and row shape of each packet-derived value column, probed on an empty batch."""
    from probe.capture.batch import PacketBatch

    empty = PacketBatch.empty(0)
    return {n: (EXTRACT[n](empty).dtype, EXTRACT[n](empty).shape[1:]) for n in names}
