"""The pipeline wires Observation Point → Selection → Cache → sinks, as the config links them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from probe.capture.batch import DecodeStats, PacketBatch
from probe.config import model
from probe.config.defaults import default_config, default_layout
from probe.pipeline import Pipeline
from tests.cache.synth import packets, record_set, split
from tests.helpers import RecordingSink

ROOT = Path(__file__).resolve().parents[1]


class Source:
    """A capture source made of synthetic batches."""

    live = False

    def __init__(self, batches: list[PacketBatch]) -> None:
        self._batches = batches
        self.stats = DecodeStats()

    def batches(self, batch_size: int):
        for b in self._batches:
            self.stats.packets_read += len(b) + 1
            self.stats.packets_decoded += len(b)
            self.stats.ignore("non-ip")
            yield b

    def close(self) -> None:
        pass


def two_caches() -> model.Config:
    layout = default_layout()
    c1 = model.Cache(name="timeouts", kind="timeoutCache", idle_timeout=1, layout=layout)
    c2 = model.Cache(name="sampled", kind="immediateCache", layout=layout)
    sp1 = model.SelectionProcess(name="all", selectors=(model.SelectAll(name="a"),), cache=c1)
    sp2 = model.SelectionProcess(name="1in4", cache=c2, selectors=(
        model.SampCountBased(name="c", packet_interval=1, packet_space=3),))
    op = model.ObservationPoint(name="op", observation_domain_id=7, offline_file="x.pcap",
                                selection_processes=(sp1, sp2))
    return model.Config(observation_points=(op,), selection_processes=(sp1, sp2),
                        caches=(c1, c2))


def test_every_selection_process_feeds_its_cache_and_sinks_see_every_record() -> None:
    b = packets(4000, flows=30, seed=5, span_us=30_000_000)
    src = Source(split(b, 500))
    pipe = Pipeline(two_caches(), exporters=False, open_source=lambda op: src)
    sink = RecordingSink()
    pipe.attach(sink)
    stats = pipe.run(handle_signals=False)

    by_cache: dict[str, int] = {}
    for rb in sink.records:
        by_cache[rb.cache_name] = by_cache.get(rb.cache_name, 0) + int(rb.columns["_packets"].sum())
        assert rb.observation_domain_id == 7
        assert rb.sys_init_us == int(b.ts_us[0])  # offline: the first packet's time
    assert by_cache == {"timeouts": 4000, "sampled": 1000}
    assert sink.closed == int(b.ts_us[-1])  # the packet clock
    assert sink.ticks == sorted(sink.ticks) and len(sink.ticks) == 8

    (point,) = stats.points
    assert (point.packets_read, point.packets_decoded, point.ignored["non-ip"]) == (4008, 4000, 8)
    assert [(s.name, s.packets_observed, s.packets_dropped) for s in stats.selectors] == [
        ("a", 4000, 0), ("c", 4000, 3000)]
    t = stats.caches["timeouts"]
    assert t.records == sum(t.expired.values()) and t.expired[1] > 0 and t.active == 0
    assert stats.caches["sampled"].expired == {3: 1000}


def test_stop_flushes_every_flow_as_forced_end() -> None:
    b = packets(1000, flows=10, seed=1)
    pipe = Pipeline(two_caches(), exporters=False,
                    open_source=lambda op: Source(split(b, 100)))
    sink = RecordingSink()
    pipe.attach(sink, "timeouts")
    real_feed = pipe.feed

    def feed_then_stop(i: int, batch: PacketBatch) -> None:
        real_feed(i, batch)
        pipe.stop()  # as SIGTERM would, after the first batch

    pipe.feed = feed_then_stop  # type: ignore[method-assign]
    pipe.run(handle_signals=False)
    assert sum(int(rb.columns["_packets"].sum()) for rb in sink.records) == 100
    assert sink.closed is not None
    assert {rb.cache_name for rb in sink.records} == {"timeouts"}


@pytest.mark.parametrize("name", ["demo.pcap", "ipv4-frag.pcap", "vlan.pcap", "linux-sll.pcap"])
def test_records_identical_for_batch_sizes_1_7_65536(name: str) -> None:
    path = ROOT / "pcaps" / name
    runs = []
    for size in (1, 7, 65536):
        pipe = Pipeline(default_config(str(path)), batch_size=size, exporters=False)
        sink = RecordingSink()
        pipe.attach(sink)
        pipe.run(handle_signals=False)
        runs.append(record_set(sink.records))
    assert runs[0] and runs[0] == runs[1] == runs[2]


def test_max_observing_packets_stops_the_point() -> None:
    cfg = two_caches()
    op = replace(cfg.observation_points[0], max_observing_packets=250)
    cfg = replace(cfg, observation_points=(op,))
    b = packets(1000, flows=10, seed=2)
    pipe = Pipeline(cfg, exporters=False, open_source=lambda op: Source(split(b, 100)))
    sink = RecordingSink()
    pipe.attach(sink, "timeouts")
    pipe.run(handle_signals=False)
    assert sum(int(rb.columns["_packets"].sum()) for rb in sink.records) == 250
