"""Capture drops reach the collector: ignoredPacketTotalCount of the reliability options record
(RFC 7011 §4.3) counts packets libpcap dropped as well as undecodable ones."""

from __future__ import annotations

from dataclasses import replace

from probe.capture import DecodeStats, PacketBatch
from probe.config.defaults import default_config
from probe.pipeline import Pipeline
from tests.cache.synth import packets
from tests.export.harness import UdpSink


class LossySource:
    """A live capture that decoded some packets, skipped some and lost some in the kernel."""

    live = True

    def __init__(self, batch: PacketBatch, ignored: dict[str, int], capture: dict[str, int]):
        self.batch, self.capture = batch, capture
        self.stats = DecodeStats(len(batch) + sum(ignored.values()), len(batch))
        self.stats.ignored.update(ignored)

    def batches(self, batch_size: int):
        yield self.batch

    def capture_stats(self) -> dict[str, int]:
        return dict(self.capture)

    def close(self) -> None:
        pass


def test_libpcap_drops_are_ignored_packets_in_options() -> None:
    sink = UdpSink()
    try:
        config = default_config(export=("udp", sink.address, sink.port))
        (op,) = config.observation_points
        points = (replace(op, name="a", if_names=("a",)), replace(op, name="b", if_names=("b",)))
        sources = {  # 10 packets of 10 flows on "a", nothing on "b"
            "a": LossySource(packets(10, flows=1000, seed=1), {"truncated": 3},
                             {"received": 1000, "dropped": 40, "ifdropped": 7}),
            "b": LossySource(PacketBatch.empty(), {}, {"received": 10, "dropped": 2})}
        Pipeline(replace(config, observation_points=points),
                 open_source=lambda p: sources[p.name]).run(handle_signals=False)
        reliability = [r for m in sink.messages() for _, r in m.options if 144 in r]
    finally:
        sink.close()
    # undecodable 3 + dropped by libpcap 40 + 2; the interface's own drops never reached us
    assert reliability and reliability[-1][164] == 45
    assert reliability[-1][42] == 10
