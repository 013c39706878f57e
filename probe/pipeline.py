"""The metering pipeline: Observation Points → Selection Processes → Caches → Exporting Processes.

Built from a ``Config`` exactly as its leafrefs link the boxes (RFC 6728 §4): a cache fed by
several selection processes is one runtime cache. Time has two sources: offline the packet
clock (the latest packet time seen) drives expiry and the exporters' timers, so a replay is
deterministic; live the wall clock does, so flows on a quiet link still expire.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probe.batching import DEFAULT_BATCH_SIZE
from probe.cache import CacheBase, CacheStats, Sink, build_cache
from probe.cache.base import columns_for_point
from probe.capture.batch import DecodeStats, PacketBatch
from probe.config import model
from probe.selection import SelectionProcess

log = logging.getLogger(__name__)

DRAIN_S = 2.0  # longest a stopping live capture keeps reading what the kernel buffered
FLUSH_SLICE = 16384  # flows ended and exported at a time when the input ends


@dataclass(slots=True)
class PointStats:
    name: str
    packets_read: int = 0
    packets_decoded: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    capture: dict[str, int] = field(default_factory=dict)  # libpcap counters (live)


@dataclass(slots=True)
class SelectorStats:
    selection_process: str
    name: str
    packets_observed: int
    packets_dropped: int


@dataclass(slots=True)
class PipelineStats:
    points: list[PointStats]
    selectors: list[SelectorStats]
    caches: dict[str, CacheStats]

    def as_dict(self) -> dict[str, Any]:
        return {
            "observation_points": [
                {"name": p.name, "packets_read": p.packets_read,
                 "packets_decoded": p.packets_decoded, "ignored": dict(p.ignored),
                 "capture": dict(p.capture)} for p in self.points],
            "selectors": [
                {"selection_process": s.selection_process, "name": s.name,
                 "packets_observed": s.packets_observed, "packets_dropped": s.packets_dropped}
                for s in self.selectors],
            "caches": {
                name: {"flows_created": c.flows_created, "active": c.active,
                       "records": c.records, "expired": {int(k): v for k, v in
                                                         sorted(c.expired.items())},
                       "packets_dropped": c.packets_dropped}
                for name, c in self.caches.items()},
        }


class _Point:
    """One Observation Point at run time: its source and what it feeds."""

    def __init__(self, cfg: model.ObservationPoint, caches: dict[str, CacheBase]) -> None:
        self.cfg = cfg
        self.source: Any = None
        self.decode: DecodeStats | None = None
        self.processes: list[tuple[SelectionProcess, CacheBase | None]] = [
            (SelectionProcess(sp), caches[sp.cache.name] if sp.cache else None)
            for sp in cfg.selection_processes]
        self.observed = 0  # packets decoded so far, for maxObservingPackets

    def limit(self, batch: PacketBatch) -> tuple[PacketBatch, bool]:
        """Cut the batch at maxObservingPackets; True when the point has seen enough."""
        cap = self.cfg.max_observing_packets
        if not cap:
            return batch, False
        room = cap - self.observed
        if len(batch) >= room:
            return batch.take(np.arange(room)), True
        self.observed += len(batch)
        return batch, False


class Pipeline:
    def __init__(self, config: model.Config, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 exporters: bool = True,
                 open_source: Callable[[model.ObservationPoint], Any] | None = None) -> None:
        self.config = config
        self.batch_size = batch_size
        self.caches: dict[str, CacheBase] = {}
        for op in config.observation_points:
            for sp in op.selection_processes:
                if sp.cache is not None and sp.cache.name not in self.caches:
                    self.caches[sp.cache.name] = build_cache(sp.cache, op.observation_domain_id)
        self.points = [_Point(op, self.caches) for op in config.observation_points]
        self.live = any(not op.offline_file for op in config.observation_points)
        self._want_exporters = exporters
        self._exporters: dict[str, Sink] = {}
        self._open_source = open_source
        self._stop = threading.Event()
        self.sys_init_us: int | None = None
        self.now_us = 0

    # ------------------------------------------------------------ wiring
    def attach(self, sink: Sink, cache_name: str | None = None) -> None:
        """Add a sink (a test's collector, the in-process collector) to one cache or all."""
        for name, cache in self.caches.items():
            if cache_name is None or name == cache_name:
                cache.sinks.append(sink)

    def _start(self, sys_init_us: int) -> None:
        """The probe starts: the sysUpTime origin is fixed and exporting processes open."""
        if self.sys_init_us is not None:
            return
        self.sys_init_us = sys_init_us
        for cache in self.caches.values():
            cache.sys_init_us = sys_init_us
        if not self._want_exporters:
            return
        try:
            from probe.export import open_exporting_process
        except ImportError:  # exporting processes not available in this build
            log.warning("no exporting processes available; records are not exported")
            return
        for cache_cfg in {c.cfg.name: c.cfg for c in self.caches.values()}.values():
            for ep in cache_cfg.exporting_processes:
                if ep.name not in self._exporters:
                    self._exporters[ep.name] = open_exporting_process(
                        ep, self.config, sys_init_us, lambda: self.stats().as_dict())
                self.caches[cache_cfg.name].sinks.append(self._exporters[ep.name])

    def _sinks(self) -> list[Sink]:
        seen: dict[int, Sink] = {}
        for cache in self.caches.values():
            for s in cache.sinks:
                seen.setdefault(id(s), s)
        return list(seen.values())

    # ------------------------------------------------------------ running
    def stop(self) -> None:
        """Ask ``run`` to finish after the current batch (signal handlers call this)."""
        self._stop.set()

    def feed(self, point: int, batch: PacketBatch) -> None:
        """Meter one decoded batch from observation point ``point``, then run the timers."""
        pt = self.points[point]
        if len(batch):
            if self.sys_init_us is None:
                self._start(int(batch.ts_us[0]))
            for sp, cache in pt.processes:
                selected = sp.select(batch)
                if cache is not None:
                    cache.process(selected)
        if self.live:
            self.now_us = time.time_ns() // 1000
            for cache in self.caches.values():
                cache.advance(self.now_us)
        else:
            clocks = [c.clock for c in self.caches.values() if c.clock is not None]
            self.now_us = max([self.now_us, *clocks])
        self._emit()

    def _emit(self) -> None:
        for cache in self.caches.values():
            cache.emit(self.now_us)
        for sink in self._sinks():
            sink.tick(self.now_us)

    def finish(self) -> PipelineStats:
        """End of input: every cached flow ends (reason 4) and every sink closes."""
        if self.sys_init_us is None:
            self._start(time.time_ns() // 1000)
        if self.live:
            self.now_us = time.time_ns() // 1000
        for cache in self.caches.values():
            while cache.flush(FLUSH_SLICE):
                cache.emit(self.now_us)
            cache.emit(self.now_us)
        for sink in self._sinks():
            sink.close(self.now_us)
        return self.stats()

    def run(self, *, handle_signals: bool = True) -> PipelineStats:
        """Meter every observation point until its input ends or SIGINT/SIGTERM arrives."""
        restore = self._install_signals() if handle_signals else {}
        try:
            if self.live:
                self._start(time.time_ns() // 1000)
            for i, batch in self._batches():  # after stop() they end once drained
                self.feed(i, batch)
        except BaseException:
            # A capture that fails mid-run (an interface gone) must not lose the flows held:
            # they go out as forced ends and the exporters close, then the error is reported.
            if self.sys_init_us is not None:  # exporters running: else nothing is held
                with contextlib.suppress(Exception):
                    self.finish()
            raise
        finally:
            for point in self.points:
                if point.source is not None:
                    point.source.close()
            for sig, old in restore.items():
                signal.signal(sig, old)
        return self.finish()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda *_: self.stop())
        return old

    def _open(self, point: _Point) -> Any:
        if self._open_source is not None:
            src = self._open_source(point.cfg)
        else:
            from probe.capture import open_observation_point

            src = open_observation_point(point.cfg)
            src.columns = columns_for_point(point.cfg)  # decode only what is metered
        point.source = src
        point.decode = src.stats
        return src

    def _batches(self) -> Iterator[tuple[int, PacketBatch]]:
        """Offline points one after another (deterministic); live points read in threads."""
        for point in self.points:
            self._open(point)
        if not self.live:
            from probe.capture import forked

            for i, point in enumerate(self.points):
                src = point.source
                if isinstance(src, forked.Reader):  # started before the pipeline was built
                    ahead = iter(src)
                elif forked.usable(src):  # read + decode on the other core meanwhile
                    ahead = iter(forked.Reader(src, self.batch_size, copy=False))
                else:
                    ahead = ((b, src.stats) for b in src.batches(self.batch_size))
                for batch, point.decode in ahead:
                    batch, done = point.limit(batch)
                    yield i, batch
                    if done or self._stop.is_set():
                        break
                else:
                    point.decode = src.stats
                ahead.close()
                if self._stop.is_set():
                    return
            return
        yield from self._threaded()

    def _threaded(self) -> Iterator[tuple[int, PacketBatch]]:
        q: queue.Queue[tuple[int, PacketBatch | BaseException | None]] = queue.Queue(maxsize=64)

        def reader(i: int, point: _Point) -> None:
            # After stop() a reader keeps reading what the kernel already holds (until a read
            # comes back empty, at most DRAIN_S), so SIGTERM loses no captured packet. Only a
            # read that began after the stop was seen may end the drain: an empty batch from a
            # poll that timed out just before SIGTERM says nothing about what arrived since.
            drain_until: float | None = None
            try:
                for batch in point.source.batches(self.batch_size):
                    batch, done = point.limit(batch)
                    q.put((i, batch))
                    if done:
                        break
                    if drain_until is not None:
                        if not len(batch) or time.monotonic() >= drain_until:
                            break
                    elif self._stop.is_set():
                        drain_until = time.monotonic() + DRAIN_S
            except BaseException as exc:  # handed to the main thread, which reports it
                q.put((i, exc))
            finally:
                q.put((i, None))

        threads = [threading.Thread(target=reader, args=(i, p), daemon=True)
                   for i, p in enumerate(self.points)]
        for t in threads:
            t.start()
        running = len(threads)
        failure: BaseException | None = None
        while running:
            try:
                i, batch = q.get(timeout=0.2)
            except queue.Empty:
                yield 0, PacketBatch.empty()  # let the timers run
                continue
            if batch is None:
                running -= 1
                continue
            if isinstance(batch, BaseException):  # one capture failed: stop and drain the rest
                failure = failure or batch
                self._stop.set()
                continue
            yield i, batch
        if failure is not None:
            raise failure

    # ------------------------------------------------------------ statistics
    def export_stats(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per exporting process, per destination counters (messages, records, bytes, ...)."""
        return {name: ep.stats() for name, ep in self._exporters.items()
                if hasattr(ep, "stats")}

    def stats(self) -> PipelineStats:
        points = []
        for p in self.points:
            ps = PointStats(p.cfg.name)
            if p.decode is not None:
                ps.packets_read = p.decode.packets_read
                ps.packets_decoded = p.decode.packets_decoded
                ps.ignored = Counter(p.decode.ignored)
            if p.source is not None and p.source.live:
                ps.capture = p.source.capture_stats()
            points.append(ps)
        selectors = [SelectorStats(sp.name, s.name, s.packets_observed, s.packets_dropped)
                     for p in self.points for sp, _ in p.processes for s in sp.selectors]
        for c in self.caches.values():
            c.stats.active = c.table.live
        return PipelineStats(points, selectors, {n: c.stats for n, c in self.caches.items()})
