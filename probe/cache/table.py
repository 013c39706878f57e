"""The flow table: every cached flow is one record of a numpy structured array.

A record holds the flow's key (``KeyLayout`` words), its times and counters, the extremes and
first-packet values its cache's layout exports, and the links of the compiled core
(``probe.cache._flowtable``): the hash chain, the least-recently-used list and the
creation-order list. There is no Python object per flow: a cached flow of the default layout
takes one 96-octet record plus 4 to 8 octets of hash buckets.

The core meters a batch one packet at a time, exactly as RFC 6728's caches are specified
(see ``probe.cache.timeout``), and ends flows by listing their slots; the cache reads those
records (``ended``) and gives the slots back (``release``). The arrays live in anonymous memory
mappings of their own: the kernel hands out zeroed pages as they are first touched and grows a
mapping in place (``mremap``), so the table doubles up to ``max_flows`` plus a spare share
(flows ended but not yet read) without copying, and since slots are taken lowest first the
memory used follows the most flows cached, not the limit.
"""

from __future__ import annotations

import mmap

import numpy as np

from probe.cache._flowtable import Table

# Per-flow state read when a record is built: name -> dtype. The extremes (min/max TTL and
# length) are kept only by caches whose layout exports them.
STATE: dict[str, str] = {
    "start": "int64", "end": "int64", "packets": "uint64", "octets": "uint64",
    "flags": "uint16", "min_ttl": "uint8", "max_ttl": "uint8", "min_len": "uint32",
    "max_len": "uint32", "version": "uint8",
}
# A biflow's (RFC 5103) other state: the orientation of its initiator's packets, the time of
# its last packet either way (for the idle timeout), and the reverse direction's times and
# counters.
BIFLOW: dict[str, str] = {
    "init": "uint8", "last": "int64", "rstart": "int64", "rend": "int64",
    "rpackets": "uint64", "roctets": "uint64", "rflags": "uint16",
}
# The core's own fields: list links and hash chain (slot numbers), whether the slot holds a
# flow, and the packet number of the flow's first packet (kept only for first-packet values).
_LINKS: dict[str, str] = {"prev": "int32", "next": "int32", "older": "int32", "newer": "int32",
                          "chain": "int32", "used": "uint8"}

Chunk = dict[str, np.ndarray]  # ended records: STATE columns, "reason", key and value columns
ValueSpecs = dict[str, tuple[np.dtype, tuple[int, ...]]]

_SPARE_MAX = 65536  # most slots kept beyond max_flows for flows ended but not yet read


def record_dtype(words: int, value_specs: ValueSpecs, state: tuple[str, ...],
                 first: bool) -> np.dtype:
    """The record: fields in order of alignment, so it packs without padding but at its end."""
    fields: list[tuple[str, np.dtype, tuple[int, ...]]] = [
        ("key", np.dtype(np.uint64), (words,))]
    fields += [(k, np.dtype(STATE.get(k) or BIFLOW[k]), ()) for k in state]
    fields += [(k, np.dtype(v), ()) for k, v in _LINKS.items()]
    if first:
        fields.append(("first", np.dtype(np.int64), ()))
    fields += [(k, np.dtype(dt), shape) for k, (dt, shape) in value_specs.items()]
    fields.sort(key=lambda f: -f[1].alignment)  # stable
    return np.dtype([(n, dt, shape) for n, dt, shape in fields], align=True)


class _Mapped:
    """A numpy array in an anonymous mapping of its own, grown in place."""

    def __init__(self, dtype: np.dtype, n: int) -> None:
        self.dtype = np.dtype(dtype)
        # Private: a shared anonymous mapping is a file of fixed size, and past its end a
        # grown mapping faults (SIGBUS).
        self._map = mmap.mmap(-1, self._octets(n), flags=mmap.MAP_PRIVATE)
        self.array = np.frombuffer(self._map, self.dtype, count=n)

    def _octets(self, n: int) -> int:
        return max(n * self.dtype.itemsize, mmap.PAGESIZE)

    def resize(self, n: int) -> None:
        """Pages past the old end come zeroed and untouched. No view of the old array may be
        alive (the mapping refuses to move under one)."""
        del self.array
        self._map.resize(self._octets(n))
        self.array = np.frombuffer(self._map, self.dtype, count=n)


class FlowTable:
    def __init__(self, words: int, value_specs: ValueSpecs, state: tuple[str, ...] = tuple(STATE),
                 *, idle_us: int = 0, active_us: int = 0, natural: bool = False,
                 max_flows: int | None = None, refuse_when_full: bool = False,
                 biflow: bool = False, capacity: int = 1024) -> None:
        self.value_names = tuple(value_specs)
        self.biflow = biflow
        if biflow:
            state = (*state, *BIFLOW)
        self.state_names = state
        self.dtype = record_dtype(words, value_specs, state, first=bool(value_specs))
        self.limit = None
        if max_flows:
            self.limit = max_flows + min(_SPARE_MAX, max(64, max_flows // 4))
            capacity = min(capacity, self.limit)
        offsets = {name: self.dtype.fields[name][1] for name in self.dtype.names}
        self.core = Table(words=words, size=self.dtype.itemsize, offsets=offsets,
                          idle_us=idle_us, active_us=active_us, natural=natural,
                          max_flows=max_flows or 0, refuse_when_full=refuse_when_full)
        self._maps = (_Mapped(self.dtype, capacity), _Mapped(np.dtype(np.int32), capacity),
                      _Mapped(np.dtype(np.uint8), capacity))
        self._bind()

    def _bind(self) -> None:
        self.rec, self._ended, self._reasons = (m.array for m in self._maps)
        self.core.bind(self.rec, self._ended, self._reasons)

    @property
    def cap(self) -> int:
        return int(self.rec.shape[0])

    @property
    def live(self) -> int:
        return self.core.live

    @property
    def peak(self) -> int:
        """The most flows cached at once."""
        return self.core.peak

    @property
    def state(self) -> dict[str, np.ndarray]:
        return {k: self.rec[k] for k in self.state_names}

    def make_room(self) -> None:
        """The core ran out of free slots and its ended flows have been read and released:
        double when fewer than an eighth of the slots are free, up to the limit. At the limit
        at least the spare share is free again (live flows never exceed ``max_flows``)."""
        cap = self.cap
        if self.core.free >= cap // 8 or cap == self.limit:
            return
        new = cap * 2 if self.limit is None else min(cap * 2, self.limit)
        self.core.unbind()
        del self.rec, self._ended, self._reasons
        for m in self._maps:
            m.resize(new)
        self._bind()

    def read(self, slots: np.ndarray) -> Chunk:
        rows = self.rec[slots]
        out = {k: rows[k] for k in self.state_names}
        out["key"] = rows["key"]
        out.update({k: rows[k] for k in self.value_names})
        return out

    def ended(self) -> tuple[np.ndarray, np.ndarray]:
        """The slots of the flows the core has ended since the last ``release``, in the order
        they ended, and their flowEndReason."""
        k = self.core.ended
        return self._ended[:k].copy(), self._reasons[:k].copy()

    def release(self) -> None:
        self.core.release()

    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self.rec["used"])
