"""TCP export keeps what a collector that dies may not have stored, sends it again on the next
connection and counts it; what finds no connection again is counted as unconfirmed; an offline
run waits for a collector that is away rather than dropping records (issue #13, case 6)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from probe.config.model import Config, ExportingProcess, ObservationPoint
from probe.export import open_exporting_process, session, transport
from tests.export.flows import SYS_INIT_US, batch
from tests.export.harness import destination
from tests.export.peers import TcpCollector, free_port, wait_until
from tests.export.wire import Decoder, split_stream

NOW = SYS_INIT_US + 100_000_000
LATER = NOW + 2 * session.FLUSH_DELAY_US  # a partly filled message has waited long enough


def _records(streams: list[bytearray]) -> int:
    n = 0
    for s in streams:
        d = Decoder()
        n += sum(len(d.decode(m).data) for m in split_stream(bytes(s)))
    return n


def _offline(ep: ExportingProcess) -> Config:
    return Config(observation_points=(ObservationPoint(name="f", observation_domain_id=1,
                                                       offline_file=str(Path("x.pcap"))),),
                  exporting_processes=(ep,))


def test_offline_waits_for_the_collector_instead_of_dropping() -> None:
    port = free_port(socket.SOCK_STREAM)
    ep = ExportingProcess(name="ep", destinations=(destination(transport="tcp", port=port),))
    rt = open_exporting_process(ep, _offline(ep), SYS_INIT_US)
    rt.destinations[0].queue_limit = 50
    late = TcpCollector(port)
    threading.Timer(0.5, late.start).start()  # the collector comes up while records wait
    rt.export(batch(400, 4), NOW)  # 8 times the queue: the run waits instead of dropping
    rt.close(NOW)
    late.stop()
    st = rt.stats()[ep.destinations[0].name]
    assert (st["records"], st["dropped"], st["unconfirmed"]) == (400, 0, 0)
    assert _records(late.streams) == 400


def test_what_finds_no_connection_again_is_unconfirmed(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(session, "CLOSE_TIMEOUT_S", 0.5)
    coll = TcpCollector().start()
    ep = ExportingProcess(name="ep", destinations=(destination(transport="tcp", port=coll.port),))
    rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
    name = ep.destinations[0].name
    rt.export(batch(300, 4), NOW)
    rt.tick(LATER)
    wait_until(lambda: _records(coll.streams) == 300, "the collector reading 300 records")
    coll.stop()  # and it never comes back

    def down() -> bool:
        rt.tick(LATER)
        return rt.stats()[name]["connected"] == 0
    wait_until(down, "the exporter seeing the collector gone")
    assert rt.stats()[name]["queued"] == 300  # kept: the exporter cannot know it was stored
    rt.export(batch(20, 4, seed=2), LATER)
    rt.close(LATER)
    st = rt.stats()[name]
    assert (st["records"], st["unconfirmed"], st["dropped"], st["resent"]) == (300, 300, 20, 0)
    assert "300 flow records sent but not confirmed" in caplog.text
    assert "20 flow records not sent" in caplog.text


@pytest.mark.parametrize("margin", [0, 300_000])
def test_what_the_collector_settled_is_not_kept(monkeypatch: pytest.MonkeyPatch,
                                                margin: int) -> None:
    """Kept: the bytes the collector's TCP has not acknowledged (none, once it read all) and
    the last ``margin`` acknowledged; a collector that goes away gets those again, no more."""
    monkeypatch.setattr(transport, "RESEND_BYTES", margin)
    monkeypatch.setattr(transport, "RESEND_WINDOWS", 0)
    coll = TcpCollector().start()
    ep = ExportingProcess(name="ep", destinations=(destination(transport="tcp", port=coll.port),))
    rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
    dest = rt.destinations[0]
    for i in range(20):
        rt.export(batch(2000, 4, seed=i), NOW)
    rt.tick(LATER)
    wait_until(lambda: _records(coll.streams) == 40_000, "the collector reading everything")
    rt.tick(LATER)  # the pump asks how much the collector's TCP acknowledged
    assert dest.queued == 0
    kept = sum(c.n for _, c in dest._sent)
    kept_bytes = sum(len(c.payload) for _, c in dest._sent)
    assert margin - 2 * transport.TCP_MAX <= kept_bytes <= margin + transport.TCP_MAX
    coll.stop()
    again = TcpCollector(coll.port)
    wait_until(lambda: dest.poll() is None and not dest.up, "the exporter seeing it gone")
    again.start()
    rt.close(LATER)
    again.stop()
    st = rt.stats()[dest.name]
    assert st["resent"] == kept and _records(again.streams) == kept
