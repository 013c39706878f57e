"""What every cache type shares: packet clock, expired-record hand-over to sinks, statistics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from probe.cache.build import concat_chunks, record_batches
from probe.cache.fields import KeyLayout, packet_values, take_keys, value_specs
from probe.cache.records import RecordBatch
from probe.cache.table import STATE, Chunk, FlowTable
from probe.capture.batch import PacketBatch
from probe.config import model
from probe.ie import BIFLOW_IES, METERED_KEYS

END_IDLE, END_ACTIVE, END_OF_FLOW, END_FORCED, END_RESOURCES = 1, 2, 3, 4, 5

# Per-flow extremes: state column -> (packet column, reduction, the IE that exports it). A
# cache keeps only those its layout exports: each costs a gather and a reduction per packet.
EXTREMES: dict[str, tuple[str, np.ufunc, str]] = {
    "min_ttl": ("ttl", np.minimum, "minimumTTL"),
    "max_ttl": ("ttl", np.maximum, "maximumTTL"),
    "min_len": ("ip_len", np.minimum, "minimumIpTotalLength"),
    "max_len": ("ip_len", np.maximum, "maximumIpTotalLength"),
}


class Sink(Protocol):
    """An exporting process as a cache sees it (the real ones live in ``probe.export``)."""

    def export(self, records: RecordBatch, now_us: int) -> None: ...
    def tick(self, now_us: int) -> None: ...
    def close(self, now_us: int) -> None: ...


@dataclass(slots=True)
class CacheStats:
    flows_created: int = 0
    records: int = 0
    expired: Counter[int] = field(default_factory=Counter)  # flowEndReason -> records
    packets_dropped: int = 0  # packets no flow could take (permanent cache full)
    active: int = 0


@dataclass(slots=True)
class Prepared:
    """A batch as a cache needs it: clamped times and flow keys (``KeyLayout.words``);
    ``value_names`` are the non-key IEs whose first-packet values each flow keeps (read per
    flow, not per packet)."""

    batch: PacketBatch
    t: np.ndarray
    value_names: tuple[str, ...]
    kmat: np.ndarray
    seq0: int
    extremes: tuple[str, ...] = ()  # the EXTREMES this cache keeps
    dir: np.ndarray | None = None  # biflow caches: 1 where a packet's key is the swapped one


class CacheBase:
    """Packet time drives everything: ``clock`` is the latest packet time seen.

    Packet times are clamped to the running maximum (a capture whose time steps backwards does
    not move flows back in time), so every timeout is a deterministic function of the packet
    stream and replays give the same records whatever the batch size.
    """

    def __init__(self, cfg: model.Cache, observation_domain_id: int) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.domain_id = observation_domain_id
        self.sinks: list[Sink] = []
        self.stats = CacheStats()
        self.sys_init_us: int | None = None
        self.clock: int | None = None
        self.seq = 0  # packets seen so far: a global order for least-recently-used eviction
        # (selectionSequenceId, selectorId) of the selection the next batch comes through:
        # the pipeline sets it, PSAMP packet reports carry it (``probe.config.psamp``).
        self.via: tuple[int, int] = (0, 0)
        self.digests: np.ndarray | None = None  # and its packets' digests (digestOutput)
        self.key_names = cfg.layout.key_names
        self.key_layout = KeyLayout(self.key_names)
        self.value_names = first_packet_values(cfg.layout)
        self.extremes = kept_extremes(cfg.layout)
        # RFC 5103: reverse IEs in the layout make every flow a biflow, both directions of a
        # conversation in one record, keyed the same both ways (``KeyLayout.biflow_words``).
        self.biflow = bool(BIFLOW_IES & {f.ie_name for f in cfg.layout.fields})
        self.table = FlowTable(self.key_layout.words_per_key, value_specs(self.value_names),
                               tuple(k for k in STATE if k not in EXTREMES or k in self.extremes),
                               biflow=self.biflow, **self.table_options(cfg))
        self._pending: list[Chunk] = []

    def table_options(self, cfg: model.Cache) -> dict[str, int | bool | None]:
        """How this cache type's flow table ends flows (``FlowTable``'s keyword arguments)."""
        return {}

    # ------------------------------------------------------------ input
    def prepare(self, batch: PacketBatch) -> Prepared:
        if self.sys_init_us is None:
            self.sys_init_us = int(batch.ts_us[0])
        start = batch.ts_us[0] if self.clock is None else max(self.clock, int(batch.ts_us[0]))
        t = np.maximum.accumulate(np.maximum(batch.ts_us, start))
        self.clock = int(t[-1])
        if self.biflow:
            kmat, way = self.key_layout.biflow_words(batch)
        else:
            kmat, way = self.key_layout.words(batch), None
        p = Prepared(batch, t, self.value_names, kmat, self.seq, self.extremes, way)
        self.seq += len(batch)
        return p

    def process(self, batch: PacketBatch) -> None:
        raise NotImplementedError

    def advance(self, now_us: int) -> None:
        """Let time pass without packets (a live probe on a quiet link)."""

    # ------------------------------------------------------------ output
    def expire(self, chunk: Chunk, reason: np.ndarray | int) -> None:
        n = int(chunk["start"].shape[0])
        if n == 0:
            return
        r = np.broadcast_to(np.asarray(reason, dtype=np.uint8), (n,)).copy()
        chunk = dict(chunk)
        chunk["reason"] = r
        self._pending.append(chunk)
        self.stats.records += n
        vals, counts = np.unique(r, return_counts=True)
        for v, c in zip(vals.tolist(), counts.tolist(), strict=True):
            self.stats.expired[v] += c

    def flush(self, most: int | None = None) -> int:
        """End of input (EOF, SIGINT, SIGTERM): cached flows end as forced ends, oldest first,
        at most ``most`` of them (all when None); returns how many are still cached. A caller
        that hands each slice on before the next keeps a million-flow cache's records from
        being built, encoded and queued all at once."""
        self.table.core.end_oldest(self.table.live if most is None else most, END_FORCED)
        self._drain(None)
        return self.table.live

    def _meter(self, p: Prepared, a: int, b: int) -> int:
        """Meter packets ``a:b`` in the flow table; returns the packets it refused (a full
        cache that never evicts). Flows it ends are read, between core calls when the table
        runs out of free slots, before their slots are used again."""
        bt = p.batch
        created = np.empty(b - a, np.int32) if self.value_names else None
        new: list[np.ndarray] = []
        refused = 0
        pos = a
        while True:
            pos, status, made, gone = self.table.core.meter(
                p.t, p.kmat, bt.ip_len, bt.tcp_flags, bt.proto, bt.ip_version, bt.ttl, p.dir,
                created, pos, b, p.seq0)
            self.stats.flows_created += made
            refused += gone
            if created is not None and made:
                new.append(created[:made].copy())
            if self.table.core.ended:
                self._drain(p)
            if status == 0:
                break
            self.table.make_room()
            if not self.table.core.free:  # cannot happen: live flows never exceed max_flows
                raise RuntimeError(f"cache {self.name}: flow table has no free slot")
        if new:
            self._keep_first_values(p, np.concatenate(new))
        return refused

    def _keep_first_values(self, p: Prepared, slots: np.ndarray) -> None:
        """Flows created from batch ``p`` and still cached take their first-packet values."""
        rec = self.table.rec
        first = rec["first"][slots]
        keep = (rec["used"][slots] != 0) & (first >= p.seq0)
        slots, rows = slots[keep], first[keep] - p.seq0
        for name, col in packet_values(_Rows(p.batch, rows), self.value_names).items():
            rec[name][slots] = col

    def _drain(self, p: Prepared | None) -> None:
        """Read the flows the table has ended, hand them on as records, free their slots."""
        slots, reasons = self.table.ended()
        if slots.shape[0] == 0:
            return
        chunk = self.table.read(slots)
        if p is not None and self.value_names:  # flows ended in the batch that created them
            first = self.table.rec["first"][slots]
            fresh = np.flatnonzero(first >= p.seq0)
            if fresh.shape[0]:
                rows = _Rows(p.batch, first[fresh] - p.seq0)
                for name, col in packet_values(rows, self.value_names).items():  # type: ignore[arg-type]
                    chunk[name][fresh] = col
        self.table.release()
        self.expire(chunk, reasons)

    def take_records(self) -> list[RecordBatch]:
        self.stats.active = self.table.live
        if not self._pending:
            return []
        chunk = concat_chunks(self._pending)
        self._pending = []
        return self._records(chunk)

    def _records(self, chunk: Chunk) -> list[RecordBatch]:
        chunk.update(self.key_layout.values(chunk["key"], chunk.get("init")))
        return record_batches(self.name, self.cfg.layout, self.domain_id,
                              self.sys_init_us or 0, chunk)

    def cached_records(self) -> list[RecordBatch]:
        """Every flow cached now, as the record it would be exported as if it ended now (its
        counters so far, flowEndReason 0: not ended), without ending it: what an operator
        asks a running probe to show (``softflowctl dump-flows``)."""
        slots = self.table.live_slots()
        if slots.shape[0] == 0:
            return []
        chunk = self.table.read(slots)
        chunk["reason"] = np.zeros(slots.shape[0], np.uint8)
        return self._records(chunk)

    def emit(self, now_us: int) -> list[RecordBatch]:
        """Hand every expired record to the sinks; returns what was handed over."""
        out = self.take_records()
        for rb in out:
            for sink in self.sinks:
                sink.export(rb, now_us)
        return out


def first_packet_values(layout: model.CacheLayout) -> tuple[str, ...]:
    """Non-key IEs a flow takes from its first packet (a key-capable IE used as a non-key)."""
    keys = layout.key_names
    return tuple(n for n in dict.fromkeys(layout.nonkey_names)
                 if n in METERED_KEYS and n not in keys)


def kept_extremes(layout: model.CacheLayout) -> tuple[str, ...]:
    """The EXTREMES a cache with this layout keeps: those it exports."""
    exported = {f.ie_name for f in layout.fields}
    return tuple(k for k, (_, _, ie) in EXTREMES.items() if ie in exported)


def reduce_runs(p: Prepared, idx: np.ndarray, seg: np.ndarray, t: np.ndarray) -> Chunk:
    """One flow per run of packets: ``idx`` lists batch rows, runs begin at offsets ``seg``.

    ``t`` is the packet clock of the rows in ``idx`` order; the start time is the run's first.
    """
    bt = p.batch
    seg_end = np.append(seg[1:], idx.shape[0])
    ip_len = bt.ip_len[idx]
    c: Chunk = {
        "start": t[seg],
        "end": t[seg_end - 1],
        "packets": (seg_end - seg).astype(np.uint64),
        "octets": np.add.reduceat(ip_len, seg, dtype=np.uint64),
        "flags": np.bitwise_or.reduceat(bt.tcp_flags[idx], seg),
        "version": bt.ip_version[idx[seg]],
        "key": take_keys(p.kmat, idx[seg]),
    }
    gathered = {"ip_len": ip_len}
    for name in p.extremes:
        column, reduce, _ = EXTREMES[name]
        if column not in gathered:
            gathered[column] = getattr(bt, column)[idx]
        c[name] = reduce.reduceat(gathered[column], seg)
    c.update(packet_values(_Rows(bt, idx[seg]), p.value_names))  # type: ignore[arg-type]
    return c


class _Rows:
    """Some rows of a batch, each column gathered when an IE first reads it: a flow keeps a
    handful of first-packet values, so gathering all twenty columns would be wasted."""

    def __init__(self, batch: PacketBatch, rows: np.ndarray) -> None:
        self._batch = batch
        self._rows = rows

    def __getattr__(self, name: str) -> np.ndarray:
        col = getattr(self._batch, name)[self._rows]
        setattr(self, name, col)
        return col
