"""Pipeline -> Exporting Process -> UDP over 127.0.0.1 -> Collector, in one process.

UDP has no flow control, and a burst of export messages can overrun the collector's socket
buffer even on loopback (the buffer may be small when the process cannot raise it). Here the
sender and the receiver share a process, so the sender waits, before each slice of records,
until the collector has taken all but a few messages off the socket: nothing is lost whatever
the buffer size, and the counts are still compared at the end rather than assumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from probe.cache.records import RecordBatch
from probe.collect import Collector, Record
from probe.collect.stats import CollectStats
from probe.config import model
from probe.export import open_exporting_process
from probe.export.process import ExportingProcessRuntime
from probe.pipeline import DEFAULT_BATCH_SIZE, Pipeline, PipelineStats

# At most this many messages in flight: 2 x 16 UDP messages of <= 1472 octets take < 160 KB of
# socket buffer (kernel accounting included), under Linux's unprivileged 208 KB default.
_WINDOW_MESSAGES = 16
_SLICE_RECORDS = 480  # records per export call: about 16 messages of the smallest records
_STALL_S = 5.0  # the collector made no progress this long: stop waiting, the counts will tell


@dataclass(frozen=True, slots=True)
class Expected:
    """A record as the cache expired it, with the layout it was exported with."""

    cache: str
    ip_version: int
    fields: tuple[str, ...]
    keys: tuple[str, ...]
    row: dict[str, object]
    age_us: int = 0  # how long before its export the flow began


@dataclass(slots=True)
class LoopResult:
    version: int
    pipeline: PipelineStats
    collect: CollectStats
    sent_records: int = 0
    sent_messages: int = 0
    not_exportable: int = 0  # records the protocol cannot carry (IPv6 over NetFlow v5)
    dropped: int = 0  # records the exporter could not send
    expected: list[Expected] = field(default_factory=list)
    decoded: list[Record] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Records sent that the collector did not decode (0 unless loopback lost some)."""
        return self.sent_records - self.collect.records


class _Keep:
    """A cache sink keeping every expired record as plain values (for ``--verify``), as the
    exporter sends them: biflows one-way to NetFlow v5/v9, which have no reverse IEs."""

    def __init__(self, out: list[Expected], version: int) -> None:
        self.out = out
        self.version = version

    def export(self, records: RecordBatch, now_us: int) -> None:
        if records.split is not None and self.version != 10:
            for part in records.split():
                self.export(part, now_us)
            return
        names = tuple(f.ie_name for f in records.fields)
        keys = tuple(f.ie_name for f in records.fields if f.is_flow_key)
        ages = (now_us - records.columns["_start_us"]).tolist()
        self.out.extend(Expected(records.cache_name, records.ip_version, names, keys, row, age)
                        for row, age in zip(records.rows(), ages, strict=True))

    def tick(self, now_us: int) -> None:
        pass

    def close(self, now_us: int) -> None:
        pass


class _Paced:
    """The real exporting process, fed in collector-paced slices.

    ``drain`` runs on the caller's thread whenever it waits, so decoded records reach the
    output while the replay goes on instead of piling up.
    """

    def __init__(self, runtime: ExportingProcessRuntime, collector: Collector,
                 drain: Callable[[], None]) -> None:
        self.runtime = runtime
        self.collector = collector
        self.drain = drain

    def totals(self) -> dict[str, int]:
        out = {"records": 0, "messages": 0, "not_exportable": 0, "dropped": 0}
        for d in self.runtime.stats().values():
            for k in out:
                out[k] += d[k]
        return out

    def _received(self) -> int:
        st = self.collector.stats
        return sum(st.messages.values()) + sum(st.malformed.values())

    def wait(self, window: int) -> None:
        """Until at most ``window`` messages sent are still unread by the collector."""
        sent = self.totals()["messages"]
        last, since = self._received(), time.monotonic()
        while sent - last > window:
            self.drain()
            time.sleep(0.0005)
            now = self._received()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since > _STALL_S:
                return
        self.drain()

    def export(self, records: RecordBatch, now_us: int) -> None:
        for a in range(0, max(len(records), 1), _SLICE_RECORDS):
            self.wait(_WINDOW_MESSAGES)
            self.runtime.export(records.slice(a, a + _SLICE_RECORDS), now_us)

    def tick(self, now_us: int) -> None:
        self.runtime.tick(now_us)
        self.wait(_WINDOW_MESSAGES)

    def flush(self, now_us: int) -> None:
        self.runtime.flush(now_us)
        self.wait(_WINDOW_MESSAGES)

    def send_templates(self, now_us: int) -> dict[str, str]:
        return self.runtime.send_templates(now_us)

    def close(self, now_us: int) -> None:
        self.runtime.close(now_us)
        self.wait(0)


def loopback_exporting_process(port: int, version: int) -> model.ExportingProcess:
    dest = model.Destination(name=f"udp://127.0.0.1:{port}", transport="udp",
                             ipfix_version=version,  # type: ignore[arg-type]
                             destination_address="127.0.0.1", destination_port=port)
    return model.ExportingProcess(name="loopback", destinations=(dest,))


def run_loopback(make_config: Callable[[model.ExportingProcess], model.Config], version: int, *,
                 on_records: Callable[[list[Record]], None],
                 keep: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
                 on_open: Callable[[Pipeline], None] | None = None,
                 on_batch: Callable[[Pipeline], None] | None = None) -> LoopResult:
    """Meter ``make_config(ep)`` (its caches exporting to ``ep``) into an in-process collector.

    ``on_records`` gets the decoded records as they arrive; with ``keep`` the result also
    holds every record the caches expired and every record the collector decoded, for
    ``verify``. ``on_open`` (given the pipeline) and ``on_batch`` are the pipeline's hooks.
    """
    collector = Collector(["udp://127.0.0.1:0"]).start()
    senders: list[_Paced] = []
    try:
        ep = loopback_exporting_process(collector.port, version)
        config = make_config(ep)
        result = LoopResult(version, PipelineStats([], [], {}), collector.stats)

        def drain() -> None:
            got = collector.take()
            if got:
                if keep:
                    result.decoded.extend(got)
                on_records(got)

        def paced(ep: model.ExportingProcess, config: model.Config, sys_init_us: int,
                  ignored_packets: Callable[[], int]) -> _Paced:
            runtime = open_exporting_process(ep, config, sys_init_us, ignored_packets)
            senders.append(_Paced(runtime, collector, drain))
            return senders[-1]

        pipeline = Pipeline(config, batch_size=batch_size, exporter_factory=paced,
                            on_open=(lambda: on_open(pipeline)) if on_open else None,
                            on_batch=on_batch)
        if keep:
            pipeline.attach(_Keep(result.expected, version))
        result.pipeline = pipeline.run()
        collector.stop()
        drain()
    finally:
        collector.stop()
    for sender in senders:
        t = sender.totals()
        result.sent_records += t["records"]
        result.sent_messages += t["messages"]
        result.not_exportable += t["not_exportable"]
        result.dropped += t["dropped"]
    return result
