"""Another thread asks the metering thread: list the cached flows, end them all, resend
templates. The work runs between two batches on the thread that meters (the flow table is not
guarded against a second one), and what ``expire_all`` hands to the exporters is exactly what
the listing showed."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from probe.capture.batch import DecodeStats, PacketBatch
from probe.config.defaults import default_config
from probe.pipeline import NotMetering, Pipeline
from tests.cache.synth import packets, record_set, split
from tests.helpers import RecordingSink


class GatedSource:
    """An offline source whose batches the test hands over one at a time."""

    live = False

    def __init__(self) -> None:
        self.q: queue.Queue[PacketBatch | None] = queue.Queue()
        self.stats = DecodeStats()

    def batches(self, batch_size: int) -> Iterator[PacketBatch]:
        while (b := self.q.get()) is not None:
            self.stats.packets_read += len(b)
            self.stats.packets_decoded += len(b)
            yield b

    def capture_stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


class Running:
    def __init__(self) -> None:
        self.src = GatedSource()
        self.sink = RecordingSink()
        self.batches_seen = 0
        self.metering: set[int] = set()  # the threads on_batch ran on

        def counted(_: Pipeline) -> None:
            self.batches_seen += 1
            self.metering.add(threading.get_ident())

        self.pipe = Pipeline(default_config("gated.pcap"), exporters=False, on_batch=counted,
                             open_source=lambda op: self.src)
        self.pipe.attach(self.sink)
        self.thread = threading.Thread(target=self.pipe.run, kwargs={"handle_signals": False})
        self.thread.start()

    def feed(self, batch: PacketBatch) -> None:
        self.src.q.put(batch)

    def feed_all(self, batches: list[PacketBatch]) -> None:
        """Hand the batches over and wait until they are metered."""
        target = self.batches_seen + len(batches)
        for b in batches:
            self.feed(b)
        deadline = time.monotonic() + 30
        while self.batches_seen < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def ask(self, fn: Callable[[], Any]) -> Any:
        """What the control thread does: hand ``fn`` over and wait, while the capture goes on
        delivering (empty) batches."""
        out: dict[str, Any] = {}

        def control() -> None:
            try:
                out["result"] = self.pipe.on_meter_thread(lambda: (threading.get_ident(),
                                                                   fn()))
            except Exception as exc:
                out["error"] = exc

        t = threading.Thread(target=control)
        t.start()
        while t.is_alive():
            self.feed(PacketBatch.empty())
            t.join(0.01)
        if "error" in out:
            raise out["error"]
        ran_on, result = out["result"]
        assert self.metering == {ran_on}, "ran outside the metering thread"
        return result

    def end(self) -> None:
        self.src.q.put(None)
        self.thread.join(30)


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running()
    yield r
    r.end()


def test_listing_shows_every_cached_flow_and_ends_none(running: Running) -> None:
    b = packets(3000, flows=120, seed=5, span_us=2_000_000)
    running.feed_all(split(b, 500))
    now, records = running.ask(running.pipe.cached_records)
    assert sum(len(r) for r in records) == 120
    assert sum(int(r.columns["_packets"].sum()) for r in records) == 3000
    assert sum(int(r.columns["_octets"].sum()) for r in records) == int(b.ip_len.sum())
    assert {int(v) for r in records for v in r.columns["_end_reason"]} == {0}
    assert now == int(b.ts_us.max())  # offline: the packet clock
    assert running.sink.records == []  # nothing ended
    assert running.batches_seen >= 6


def test_expire_all_exports_exactly_what_was_listed(running: Running) -> None:
    running.feed_all(split(packets(2000, flows=80, seed=9), 400))
    _, listed = running.ask(running.pipe.cached_records)
    assert running.ask(running.pipe.expire_all) == 80
    ended = running.sink.records
    assert {int(v) for r in ended for v in r.columns["_end_reason"]} == {4}  # forced end

    def without_reason(batches: list) -> list:
        return [tuple(kv for kv in row if kv[0] not in ("_end_reason", "flowEndReason"))
                for row in record_set(batches)]

    assert without_reason(ended) == without_reason(listed)
    _, after = running.ask(running.pipe.cached_records)
    assert after == []
    assert running.pipe.stats().caches["Flow cache"].expired[4] == 80


def test_no_answer_once_the_pipeline_stopped() -> None:
    r = Running()
    r.feed(packets(10, flows=2))
    r.end()
    with pytest.raises(NotMetering):
        r.pipe.on_meter_thread(lambda: None)


def test_a_request_no_batch_boundary_takes_times_out(running: Running) -> None:
    running.feed_all([packets(10, flows=2)])  # then waits for its next batch, which does not come
    with pytest.raises(TimeoutError):
        running.pipe.on_meter_thread(lambda: None, timeout=0.3)
    assert running.ask(lambda: 7) == 7  # withdrawn: the next one is served
