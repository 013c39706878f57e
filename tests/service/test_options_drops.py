"""Capture drops reach the collector: ignoredPacketTotalCount of the reliability options record
(RFC 7011 §4.3) counts packets libpcap dropped as well as undecodable ones."""

from __future__ import annotations

from probe.config.model import Config, ExportingProcess
from probe.export import open_exporting_process
from tests.export.flows import SYS_INIT_US, batch
from tests.export.harness import UdpSink, destination


def test_libpcap_drops_are_ignored_packets_in_options() -> None:
    sink = UdpSink()
    try:
        ep = ExportingProcess(name="ep", destinations=(destination(sink),))
        provider = lambda: {"observation_points": [  # noqa: E731 - what Pipeline.stats() gives
            {"name": "a", "ignored": {"truncated": 3},
             "capture": {"received": 1000, "dropped": 40, "ifdropped": 7}},
            {"name": "b", "ignored": {}, "capture": {"received": 10, "dropped": 2}}]}
        rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US, provider)
        now = SYS_INIT_US + 1_000_000
        rt.export(batch(10, 4), now)
        rt.close(now)
        reliability = [r for m in sink.messages() for _, r in m.options if 144 in r]
    finally:
        sink.close()
    # undecodable 3 + dropped by libpcap 40 + 2; the interface's own drops never reached us
    assert reliability and reliability[-1][164] == 45
    assert reliability[-1][42] == 10
