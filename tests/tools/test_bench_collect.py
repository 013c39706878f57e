"""The collector bench's own machinery: which rates it tries, and that a stream repeated to
last long enough still reads, to a collector, as one clean stream per exporter (the
bundled decoder finds every record and no sequence gap), sFlow agents apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.collect import Decoder
from tests.collect import sflow_wire as w
from tools import bench_collect as bc
from tools import streams, tracegen


def _search(rates: list[int], refine: int, capacity: int) -> list[int]:
    s = bc.Search(rates, refine)
    tried = []
    while (rate := s.next()) is not None:
        tried.append(rate)
        s.tried[rate] = rate <= capacity
    return tried


def test_rates_rise_until_missed_then_narrow() -> None:
    rates = [100_000, 250_000, 500_000, 1_000_000]
    assert _search(rates, 2, 5_000_000) == rates
    assert _search(rates, 2, 400_000) == [100_000, 250_000, 500_000, 354_000, 421_000]
    assert _search(rates, 0, 400_000) == [100_000, 250_000, 500_000]
    # the first rate missed: a quarter of it, then midpoints up from there
    assert _search(rates, 1, 40_000) == [100_000, 25_000, 50_000]
    assert _search(rates, 1, 1_000) == [100_000, 25_000, 6_000]  # then below the floor


def _sent(sender: bc.Sender, passes: int) -> list[tuple[bytes, int]]:
    sink = streams.Sink()
    sender.send(2_000_000, sink.port, passes)
    got = sink.close()  # in sending order, on loopback: datagram i is exporter i mod EXPORTERS's
    assert len(got) == passes * bc.EXPORTERS * len(sender.datagrams)
    return [(d, i % bc.EXPORTERS) for i, d in enumerate(got)]


@pytest.mark.parametrize("version", [10, 9, 5])
def test_repeated_netflow_streams_have_no_sequence_gaps(tmp_path: Path, version: int) -> None:
    pcap = tmp_path / "t.pcap"
    tracegen.generate(pcap, 3000, seed=4, duration_s=30)
    datagrams = streams.record(pcap, version, tmp_path / "s.stream")
    counts = streams.records_in(datagrams)
    sender = bc.Sender(datagrams, version, counts)
    d = Decoder()
    for msg, exporter in _sent(sender, 3):
        d.feed(msg, "127.0.0.1", ("udp", "127.0.0.1", 1000 + exporter, 1))
    d.flush()
    st = d.stats
    assert st.records == 3 * bc.EXPORTERS * counts.records
    assert (st.lost_records, st.lost_packets, st.sequence_resets, st.out_of_order) == (0, 0, 0, 0)


def test_repeated_sflow_stream_is_one_agent_per_exporter() -> None:
    frame = bytes(range(60))
    datagrams = [w.datagram("192.0.2.1", seq, [w.flow_sample([w.raw_header(frame)])] * 3)
                 for seq in range(1, 41)]
    counts = streams.records_in(datagrams)
    sender = bc.Sender(datagrams, streams.SFLOW, counts)
    d = Decoder()
    for msg, exporter in _sent(sender, 2):
        d.feed(msg, "127.0.0.1", ("udp", "127.0.0.1", 1000 + exporter, 1), accept="sflow")
    d.flush()
    assert d.stats.records == 2 * bc.EXPORTERS * 40 * 3
    assert d.stats.sflow["lost_datagrams"] == 0
    agents = sorted(a for a, _ in d.sflow.agents)
    assert agents == [f"192.0.2.{k}" for k in range(1, bc.EXPORTERS + 1)]


def test_the_table_says_why_a_rate_was_missed() -> None:
    ok = bc.Result("nfcapd", "ipfix", 100_000, 99_000.0, 500_000, 500_000, 0, True, 0.1)
    miss = bc.Result("nfcapd", "ipfix", 250_000, 248_000.0, 1_250_000, 1_200_000, 7, False,
                     0.3)
    text = bc.table([ok, miss])
    assert "99k rec/s" in text and "0.020" in text
    assert "248k rec/s: 7 datagrams dropped, backlog after 1 s, 50000 records missing" in text
