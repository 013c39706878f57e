"""The metering pipeline: Observation Points → Selection Processes → Caches → Exporting Processes.

Built from a ``Config`` exactly as its leafrefs link the boxes (RFC 6728 §4): a cache fed by
several selection processes is one runtime cache. Time has two sources: offline the packet
clock (the latest packet time seen) drives expiry and the exporters' timers, so a replay is
deterministic; live the wall clock does, so flows on a quiet link still expire.

Every command meters through here: ``flowprobe run`` (``probe.service``), ``flowprobe
replay`` with ``--export`` and without (``probe.loopback``). The pipeline alone opens the
captures (``probe.capture.open``), telling each which columns its caches and selectors read
(``columns_for_point``), and alone starts the exporting processes, through a factory the
loopback may replace.

The flow table and the exporters belong to the thread that meters: nothing guards them against
a second one. A control socket's thread that wants to read or end the cached flows hands the
work to that thread (``on_meter_thread``), which runs it between two batches; a live capture
hands over an empty batch at least every 0.2 s, so the wait is short on a quiet link too.
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

from probe import capture
from probe.batching import DEFAULT_BATCH_SIZE
from probe.cache import CacheBase, CacheStats, Sink, build_cache
from probe.cache.base import EXTREMES, first_packet_values, kept_extremes
from probe.cache.fields import KeyLayout, packet_values
from probe.cache.records import RecordBatch
from probe.cache.reports import report_values, section_widths
from probe.capture import ColumnReads, PacketBatch, Source
from probe.config import model
from probe.config.psamp import selection_sequences
from probe.memory import keep_freed_memory
from probe.selection import SelectionProcess, columns_for

log = logging.getLogger(__name__)

DRAIN_S = 2.0  # longest a stopping live capture keeps reading what the kernel buffered
FLUSH_SLICE = 16384  # flows ended and exported at a time when the input ends
CALL_TIMEOUT_S = 4.0  # longest a control request waits for the metering thread (client: 5 s)

# An exporting process, as the pipeline starts it: (its config, the whole config, the probe's
# start on the packet clock in microseconds, packets the observation points could not meter so
# far) -> a cache sink. ``probe.export.open_exporting_process`` unless the caller says otherwise.
ExporterFactory = Callable[[model.ExportingProcess, model.Config, int, Callable[[], int]], Sink]
OpenSource = Callable[[model.ObservationPoint], Source]


# ------------------------------------------------------------ which columns a point decodes
# PacketBatch columns every cache reads: time, IP version and protocol (FIN/RST), IP length
# (octets) and TCP flags.
_ALWAYS_READ = frozenset({"ts_us", "ip_version", "proto", "ip_len", "tcp_flags"})


def columns_read(cfg: model.Cache) -> frozenset[str]:
    """The PacketBatch columns a cache of this config reads, found by running its key builder
    and value extractors on a batch that notes what they read (so they cannot disagree)."""
    reads = ColumnReads()
    KeyLayout(cfg.layout.key_names).words(reads)  # type: ignore[arg-type]
    packet_values(reads, first_packet_values(cfg.layout))  # type: ignore[arg-type]
    if cfg.kind == "immediateCache":
        report_values(reads, cfg.layout, (0, 0))  # type: ignore[arg-type]
    return _ALWAYS_READ | reads.names | {EXTREMES[k][0] for k in kept_extremes(cfg.layout)}


def columns_for_point(op: model.ObservationPoint) -> frozenset[str]:
    """What an Observation Point must decode: what its caches read, packet times for the
    selectors (count- and time-based sampling read nothing else) and what filters read."""
    out = {"ts_us"}
    for sp in op.selection_processes:
        out |= columns_for(sp.selectors)
        if sp.cache is not None:
            out |= columns_read(sp.cache)
    return frozenset(out)


def widths_for_point(op: model.ObservationPoint) -> dict[str, int]:
    """How many octets of each packet section an Observation Point decodes: what the widest
    packet report of it asks (none when no cache reports sections)."""
    out: dict[str, int] = {}
    for sp in op.selection_processes:
        if sp.cache is not None and sp.cache.kind == "immediateCache":
            for column, width in section_widths(sp.cache.layout).items():
                out[column] = max(out.get(column, 0), width)
    return out


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


class NotMetering(RuntimeError):
    """The pipeline is not between batches and will not be: starting, or stopped."""


@dataclass(slots=True)
class _Call:
    """Work another thread asked the metering thread to do, and its outcome."""

    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Exception | None = None


class _Point:
    """One Observation Point at run time: its source and what it feeds, and for each
    selection process the (selectionSequenceId, selectorId) its packets are selected by."""

    def __init__(self, cfg: model.ObservationPoint, caches: dict[str, CacheBase],
                 via: list[tuple[int, int]]) -> None:
        self.cfg = cfg
        self.source: Source | None = None
        self.processes: list[tuple[SelectionProcess, CacheBase | None]] = [
            (SelectionProcess(sp), caches[sp.cache.name] if sp.cache else None)
            for sp in cfg.selection_processes]
        self.via = via
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
    """``run()`` opens the captures, meters until they end (or ``stop()``), then exports every
    flow and closes the exporting processes.

    ``exporters``: start the config's exporting processes (False: only the sinks ``attach``ed
    get records), through ``exporter_factory`` when given. ``fork``: offline files may be read
    ahead by a child process (``probe.capture.forked``). ``buffer_size`` and ``fanout`` go to
    live captures; ``on_open`` runs once every capture is open (``flowprobe run --user`` drops
    its privileges there, a replay opens its control socket: after the reader's fork).
    ``on_batch`` runs on the metering thread after every batch (the progress line): it must
    cost little and return. ``open_source`` replaces ``probe.capture.open`` in tests.
    """

    def __init__(self, config: model.Config, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 exporters: bool = True, exporter_factory: ExporterFactory | None = None,
                 fork: bool = True, buffer_size: int | None = None,
                 fanout: tuple[int, int] | None = None,
                 on_open: Callable[[], None] | None = None,
                 on_batch: Callable[[Pipeline], None] | None = None,
                 open_source: OpenSource | None = None) -> None:
        self.config = config
        self.batch_size = batch_size
        self.caches: dict[str, CacheBase] = {}
        for op in config.observation_points:
            for sp in op.selection_processes:
                if sp.cache is not None and sp.cache.name not in self.caches:
                    self.caches[sp.cache.name] = build_cache(sp.cache, op.observation_domain_id)
        via: dict[str, list[tuple[int, int]]] = {}
        for seq in selection_sequences(config):
            via.setdefault(seq.observation_point.name, []).append(
                (seq.sequence_id, seq.selector_ids[-1] if seq.selector_ids else 0))
        self.points = [_Point(op, self.caches, via.get(op.name, []))
                       for op in config.observation_points]
        self.live = any(not op.offline_file for op in config.observation_points)
        self._want_exporters = exporters
        self._exporter_factory = exporter_factory
        self._exporters: dict[str, Sink] = {}
        self._fork = fork
        self._buffer_size = buffer_size
        self._fanout = fanout
        self._on_open = on_open
        self._on_batch = on_batch
        self._open_source = open_source
        self._stop = threading.Event()
        self._calls: list[_Call] = []
        self._calls_lock = threading.Lock()
        self._metering = False  # run() is in its loop and serves _calls between batches
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
        factory = self._exporter_factory
        if factory is None:  # imported only now: the first batch is being read meanwhile
            from probe.export import open_exporting_process as factory
        for cache_cfg in {c.cfg.name: c.cfg for c in self.caches.values()}.values():
            for ep in cache_cfg.exporting_processes:
                if ep.name not in self._exporters:
                    self._exporters[ep.name] = factory(ep, self.config, sys_init_us,
                                                       self.ignored_packets)
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
            for (sp, cache), via in zip(pt.processes, pt.via, strict=True):
                selected = sp.select(batch)
                if cache is not None:
                    cache.via, cache.digests = via, sp.digests
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

    def _end_all(self) -> int:
        """Every cached flow ends (reason 4, forced end) and goes to the sinks; how many."""
        ended = 0
        for cache in self.caches.values():
            ended += cache.table.live
            while cache.flush(FLUSH_SLICE):
                cache.emit(self.now_us)
            cache.emit(self.now_us)
        return ended

    def finish(self) -> PipelineStats:
        """End of input: every cached flow ends (reason 4) and every sink closes."""
        if self.sys_init_us is None:
            self._start(time.time_ns() // 1000)
        if self.live:
            self.now_us = time.time_ns() // 1000
        self._end_all()
        for sink in self._sinks():
            sink.close(self.now_us)
        return self.stats()

    # ------------------------------------------------------------ control (metering thread)
    def on_meter_thread(self, fn: Callable[[], Any], timeout: float = CALL_TIMEOUT_S) -> Any:
        """``fn()``, run by the metering thread between two batches; what it returns.

        For another thread (the control socket's) that must read or change the caches or the
        exporters. ``NotMetering`` when the pipeline is not running its loop (starting, or
        stopped), ``TimeoutError`` when no batch boundary came within ``timeout``.
        """
        call = _Call(fn)
        with self._calls_lock:
            if not self._metering:
                raise NotMetering("the pipeline is not metering (starting, reloading or "
                                  "stopping)")
            self._calls.append(call)
        if not call.done.wait(timeout):
            with self._calls_lock:
                if call in self._calls:  # not begun: withdraw it
                    self._calls.remove(call)
                    raise TimeoutError(f"the metering thread did not take the request within "
                                       f"{timeout:g} s")
            call.done.wait()  # begun: it finishes
        if call.error is not None:
            raise call.error
        return call.result

    def _serve_calls(self, error: Exception | None = None) -> None:
        """Run (or, with ``error``, refuse) what other threads asked for; metering thread."""
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for call in calls:
            try:
                if error is not None:
                    raise error
                call.result = call.fn()
            except Exception as exc:  # handed to the asking thread
                call.error = exc
            finally:
                call.done.set()

    def _now(self) -> int:
        """Now on the pipeline's clock: the wall clock live, the packet clock offline."""
        return time.time_ns() // 1000 if self.live else self.now_us

    def expire_all(self) -> int:
        """End every cached flow now (forced end) and send it on, as ``softflowctl
        expire-all``; how many ended. Metering thread only (``on_meter_thread``)."""
        self.now_us = max(self.now_us, self._now())
        ended = self._end_all()
        for sink in self._sinks():
            flush = getattr(sink, "flush", None)
            if flush is not None:  # an exporting process: partly filled messages go now too
                flush(self.now_us)
            else:
                sink.tick(self.now_us)
        return ended

    def cached_records(self) -> tuple[int, list[RecordBatch]]:
        """(now, every cached flow as the record it would be if it ended now), none ended:
        what ``flowprobe flows`` lists. Metering thread only (``on_meter_thread``); the
        records are copies, for any thread to read."""
        return self._now(), [rb for c in self.caches.values() for rb in c.cached_records()]

    def send_templates(self) -> dict[str, dict[str, str]]:
        """Every exporting process's Templates again now (``softflowctl send-template``):
        per process, per destination, what happened. Metering thread only."""
        out: dict[str, dict[str, str]] = {}
        for name, ep in self._exporters.items():
            send = getattr(ep, "send_templates", None)
            if send is not None:
                out[name] = send(self.now_us)
        return out

    # ------------------------------------------------------------ running
    def run(self, *, handle_signals: bool = True) -> PipelineStats:
        """Meter every observation point until its input ends or SIGINT/SIGTERM arrives."""
        restore = self._install_signals() if handle_signals else {}
        with self._calls_lock:
            self._metering = True
        try:
            if self.live:
                self._start(time.time_ns() // 1000)
            for i, batch in self._batches():  # after stop() they end once drained
                self.feed(i, batch)
                if self._calls:
                    self._serve_calls()
                if self._on_batch is not None:
                    self._on_batch(self)
        except BaseException:
            # A capture that fails mid-run (an interface gone) must not lose the flows held:
            # they go out as forced ends and the exporters close, then the error is reported.
            if self.sys_init_us is not None:  # exporters running: else nothing is held
                with contextlib.suppress(Exception):
                    self.finish()
            raise
        finally:
            with self._calls_lock:
                self._metering = False
            self._serve_calls(NotMetering("the pipeline is stopping: every flow ends and is "
                                          "exported"))
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

    def _open(self, point: _Point) -> Source:
        """The point's capture, decoding only the columns its caches and selectors read; an
        offline one read ahead by a child process when ``capture.open`` finds that helps."""
        if self._open_source is not None:
            src = self._open_source(point.cfg)
        else:
            src = capture.open(point.cfg, columns=columns_for_point(point.cfg),
                               widths=widths_for_point(point.cfg),
                               fork=self._fork and not self.live, batch_size=self.batch_size,
                               buffer_size=self._buffer_size, fanout=self._fanout)
        point.source = src
        return src

    def _batches(self) -> Iterator[tuple[int, PacketBatch]]:
        """Offline points one after another (deterministic); live points read in threads."""
        if not self.live:
            # A bounded run: keep freed batch memory for the next batch (set before a reader
            # is forked, which inherits it).
            keep_freed_memory()
        for point in self.points:
            self._open(point)
        if self._on_open is not None:
            self._on_open()
        if not self.live:
            for i, point in enumerate(self.points):
                assert point.source is not None
                with contextlib.closing(point.source.batches(self.batch_size)) as batches:
                    for batch in batches:
                        batch, done = point.limit(batch)
                        yield i, batch
                        if done or self._stop.is_set():
                            break
                if self._stop.is_set():
                    return
            return
        yield from self._threaded()

    def _threaded(self) -> Iterator[tuple[int, PacketBatch]]:
        q: queue.Queue[tuple[int, PacketBatch | BaseException | None]] = queue.Queue(maxsize=64)

        def reader(i: int, point: _Point) -> None:
            assert point.source is not None
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
    def input_progress(self) -> tuple[int, int | None, int]:
        """(bytes of the capture files read, their total size or None when unknown, packets
        read so far): how far an offline run is. The progress line reads it after a batch."""
        read, total, packets = 0, 0, 0
        for p in self.points:
            if p.source is None:
                continue
            progress = p.source.progress()
            if progress is None:
                return 0, None, 0  # a live capture has no end
            read += progress[0]
            total = None if total is None or progress[1] is None else total + progress[1]
            packets += p.source.stats.packets_read
        return read, total, packets

    def flows_cached(self) -> int:
        """Flows in the caches now; metering thread (the progress line)."""
        return sum(c.table.live for c in self.caches.values())

    def export_stats(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per exporting process, per destination counters (messages, records, bytes, ...)."""
        return {name: ep.stats() for name, ep in self._exporters.items()
                if hasattr(ep, "stats")}

    def ignored_packets(self) -> int:
        """Packets the observation points could not meter so far: undecodable, and dropped by
        libpcap for want of buffer space on a live capture (the exporters' reliability
        options record carries it as ignoredPacketTotalCount)."""
        return sum(sum(p.ignored.values()) + p.capture.get("dropped", 0)
                   for p in self._point_stats())

    def _point_stats(self) -> list[PointStats]:
        points = []
        for p in self.points:
            ps = PointStats(p.cfg.name)
            if p.source is not None:
                decode = p.source.stats
                ps.packets_read = decode.packets_read
                ps.packets_decoded = decode.packets_decoded
                ps.ignored = Counter(decode.ignored)
                if p.source.live:
                    ps.capture = p.source.capture_stats()
            points.append(ps)
        return points

    def stats(self) -> PipelineStats:
        points = self._point_stats()
        selectors = [SelectorStats(sp.name, s.name, s.packets_observed, s.packets_dropped)
                     for p in self.points for sp, _ in p.processes for s in sp.selectors]
        for c in self.caches.values():
            c.stats.active = c.table.live
        return PipelineStats(points, selectors, {n: c.stats for n, c in self.caches.items()})
