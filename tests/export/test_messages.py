"""Message framing as a collector sees it: sequence numbers, sizes, templates, headers."""

from __future__ import annotations

import itertools
import socket
import time

import numpy as np
import pytest

import probe.export.session as session
from probe.cache.records import RecordBatch
from probe.config.model import Config, Destination, ExportingProcess
from probe.errors import UserError
from probe.export import open_exporting_process
from probe.export.transport import UdpTransport
from tests.export.flows import SYS_INIT_US, batch
from tests.export.harness import UdpSink, destination, run
from tests.export.wire import Decoder


@pytest.fixture
def sink():
    s = UdpSink()
    yield s
    s.close()


def test_ipfix_sequence_counts_data_records_per_domain(sink: UdpSink) -> None:
    batches = [batch(100, 4, domain=1), batch(40, 6, domain=2), batch(65, 4, domain=1, seed=3)]
    run([destination(sink)], batches)
    expected: dict[int, int] = {}
    msgs = sink.messages()
    for m in msgs:
        dom = m.header["domain"]
        assert m.header["seq"] == expected.get(dom, 0)
        expected[dom] = expected.get(dom, 0) + len(m.data) + len(m.options)
    assert sum(len(m.data) for m in msgs) == 205


def test_templates_precede_data_and_messages_fit_the_mtu(sink: UdpSink) -> None:
    run([destination(sink)], [batch(500, 4), batch(300, 6, seed=2)])
    seen: set[int] = set()
    msgs = []
    dec = Decoder()
    for raw in sink.datagrams():
        assert len(raw) <= 1472
        m = dec.decode(raw)
        seen.update(t[0] for t in m.templates)
        assert all(tid in seen for tid, _ in m.data + m.options)
        msgs.append(m)
    assert sum(len(m.data) for m in msgs) == 800


def test_ipv6_destination_messages_fit_ipv6_mtu() -> None:
    try:
        s6 = UdpSink(socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        run([destination(s6)], [batch(400, 6)])
        sizes = [len(r) for r in s6.datagrams()]
        assert max(sizes) <= 1452 and max(sizes) > 1400
    finally:
        s6.close()


@pytest.mark.parametrize("packet", [600, 1280])
def test_max_packet_size_is_the_ip_packet(sink: UdpSink, packet: int) -> None:
    """RFC 6728 maxPacketSize: the IP packet, so a message is 28 octets (IPv4 and UDP headers)
    shorter; full messages come as close to it as whole records allow."""
    run([destination(sink, max_packet_size=packet)], [batch(500, 4)])
    sizes = [len(raw) for raw in sink.datagrams()]
    assert max(sizes) <= packet - 28 and max(sizes) > packet - 28 - 60  # 60: one record more


def test_max_packet_size_zero_takes_the_path_mtu(sink: UdpSink) -> None:
    """maxPacketSize 0: the path MTU (loopback's is 65536, so the largest datagram IPv4 can
    carry: 65535 - 28 octets of message), and the don't-fragment bit is set."""
    dest = destination(sink, max_packet_size=0)
    transport = UdpTransport(dest)
    assert transport.sock.getsockopt(socket.IPPROTO_IP, 10) == 2  # IP_MTU_DISCOVER: DO
    transport.close()
    (d,) = run([dest], [batch(3000, 4)]).destinations
    assert d.max_size == 65535 - 28
    sizes = [len(raw) for raw in sink.datagrams()]
    assert max(sizes) > 60_000 and max(sizes) <= 65507


def test_udp_template_refresh_by_packets_and_by_time(sink: UdpSink) -> None:
    run([destination(sink, template_refresh_packet=3)], [batch(28 * 9, 4)])
    kinds = ["T" if m.templates else "D" for m in sink.messages() if m.header["domain"] == 1]
    # after every 3 messages the templates again (options travel in domain 0)
    assert kinds[:1] == ["T"] and kinds.count("T") >= 3
    gaps = [i for i, k in enumerate(kinds) if k == "T"]
    assert all(b - a == 4 for a, b in itertools.pairwise(gaps))  # T D D D T D D D ...

    run([destination(sink, template_refresh_timeout=2)],
        [batch(10, 4, seed=i) for i in range(6)], step_us=1_100_000)
    refreshes = [m for m in sink.messages() if any(not t[2] for t in m.templates)]
    assert len(refreshes) == 3  # at 0 s, after 2.2 s and after 4.4 s of packet time


def test_netflow_v9_header_clock_and_sequence(sink: UdpSink) -> None:
    run([destination(sink, version=9)], [batch(100, 4), batch(20, 6, seed=4)])
    msgs = sink.messages()
    assert [m.header["seq"] for m in msgs] == list(range(len(msgs)))
    for m in msgs:
        assert m.header["count"] == len(m.templates) + len(m.data) + len(m.options)
        # boot time = unix_secs * 1000 - sysUptime is exactly the probe's start millisecond
        assert m.header["unix_secs"] * 1000 - m.header["uptime"] == SYS_INIT_US // 1000


def test_netflow_v5_header_and_records(sink: UdpSink) -> None:
    b = batch(75, 4)
    rt = run([destination(sink, version=5)], [b, batch(10, 6)])
    msgs = sink.messages()
    assert [m.header["count"] for m in msgs] == [30, 30, 15]
    assert [m.header["seq"] for m in msgs] == [0, 30, 60]
    recs = [r for m in msgs for _, r in m.data]
    first = {(r["srcaddr"], r["dstaddr"], r["srcport"]): r for r in recs}
    c = b.columns
    for i in range(len(b)):
        r = first[(int(c["sourceIPv4Address"][i]), int(c["destinationIPv4Address"][i]),
                   int(c["sourceTransportPort"][i]))]
        assert r["First"] == int(c["_start_us"][i]) // 1000 - SYS_INIT_US // 1000
        assert r["dPkts"] == int(c["_packets"][i]) and r["dOctets"] == int(c["_octets"][i])
        if c["protocolIdentifier"][i] == 1:
            assert r["dstport"] == int(c["icmpTypeCodeIPv4"][i])
    for m in msgs:
        h = m.header
        boot = h["unix_secs"] * 1000 + h["unix_nsecs"] // 1_000_000 - h["uptime"]
        assert boot == SYS_INIT_US // 1000 and h["engine_id"] == 1
    assert rt.stats()[destination(sink).name]["not_exportable"] == 10


@pytest.mark.parametrize("mode", ["parallel", "loadBalancing"])
def test_netflow_v5_flows_older_than_the_uptime_wrap_are_not_exportable(
        sink: UdpSink, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """v5 First/Last are 32-bit sysUptime milliseconds: a collector's start time (header
    uptime minus First) wraps for a flow that began 49.7 days or more before the export.
    Those are counted as not exportable; the rest go out with times a collector gets right."""
    day_us = 86_400 * 1_000_000
    now = SYS_INIT_US + 60 * day_us
    old = batch(40, 4, seed=5)  # started in the first minute: 60 days before the export
    recent = batch(35, 4, seed=6, offset_us=59 * day_us)
    both = RecordBatch(old.cache_name, 1, 4, old.fields, {
        k: np.concatenate([old.columns[k], recent.columns[k]]) for k in old.columns},
        SYS_INIT_US)
    ep = ExportingProcess(name="ep", export_mode=mode,  # type: ignore[arg-type]
                          destinations=(destination(sink, version=5),))
    rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
    rt.export(both, now)
    rt.close(now)
    (d,) = rt.destinations
    assert d.counters.not_exportable == 40 and d.counters.records == 35
    assert "started 49.7 days or more before their export" in caplog.text
    recs = [(m.header, r) for m in sink.messages() for _, r in m.data]
    assert len(recs) == 35
    starts = sorted((recent.columns["_start_us"] // 1000).tolist())
    got = sorted(h["unix_secs"] * 1000 + h["unix_nsecs"] // 1_000_000
                 - ((h["uptime"] - r["First"]) & 0xFFFFFFFF) for h, r in recs)
    assert got == starts


def test_load_balancing_splits_whole_messages() -> None:
    a, b = UdpSink(), UdpSink()
    try:
        run([destination(a), destination(b)], [batch(28 * 6, 4)], mode="loadBalancing")
        na = sum(len(m.data) for m in a.messages())
        nb = sum(len(m.data) for m in b.messages())
        assert na + nb == 168 and na == nb == 84
    finally:
        a.close()
        b.close()


def test_fallback_skips_a_tcp_collector_that_is_down(sink: UdpSink) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nobody listens here once the socket closes
    rt = run([destination(version=10, transport="tcp", port=dead), destination(sink)],
             [batch(50, 4)], mode="fallback")
    assert sum(len(m.data) for m in sink.messages()) == 50
    st = rt.stats()
    assert st[f"tcp://127.0.0.1:{dead}"]["records"] == 0


def test_tcp_queue_overflow_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    old = session.CLOSE_TIMEOUT_S
    session.CLOSE_TIMEOUT_S = 0.2
    try:
        b = batch(120, 4)
        rt = run([destination(version=10, transport="tcp", port=dead)], [b], queue_limit=50)
    finally:
        session.CLOSE_TIMEOUT_S = old
    st = rt.stats()[f"tcp://127.0.0.1:{dead}"]
    assert st["records"] == 0 and st["dropped"] == 120
    assert st["not_sent_packets"] == int(b.columns["_packets"].sum())
    assert "120 flow records not sent" in caplog.text  # the user hears about it


def test_rate_limit_paces_sends(sink: UdpSink) -> None:
    t0 = time.monotonic()
    run([destination(sink, rate_limit=20_000)], [batch(28 * 20, 4)])
    elapsed = time.monotonic() - t0
    total = sum(len(r) for r in sink.datagrams())
    assert total > 28_000 and elapsed >= (total - 1500) / 20_000 * 0.9


def test_unusable_destination_is_a_user_error() -> None:
    """A source address this host does not have (no DNS involved: tests stay on loopback)."""
    dest = Destination(name="bad", transport="udp", destination_address="127.0.0.1",
                       destination_port=4739, source_address="192.0.2.1")
    with pytest.raises(UserError, match=r"^export destination bad: 127\.0\.0\.1 port 4739: "):
        run([dest], [])


def test_fallback_leaves_a_udp_collector_that_answers_port_unreachable(sink: UdpSink) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again: the kernel answers port unreachable
    first, second = batch(28 * 3, 4, seed=1), batch(50, 4, seed=2)
    rt = run([destination(port=dead), destination(sink)], [first, second], mode="fallback")
    got = sum(len(m.data) for m in sink.messages())
    assert got == 50  # the first batch went to the dead port; after its refusal, the next one
    st = rt.stats()[f"udp://127.0.0.1:{dead}"]
    assert st["refused"] >= 1


def test_options_templates_refresh_on_their_own_timer(sink: UdpSink) -> None:
    run([destination(sink, options_template_refresh_packet=2)], [batch(28 * 8, 4)])
    msgs = sink.messages()
    data_tmpl = [i for i, m in enumerate(msgs) if any(not t[2] for t in m.templates)]
    opt_tmpl = [i for i, m in enumerate(msgs) if any(t[2] for t in m.templates)]
    assert len(data_tmpl) == 1  # data templates: only the first time (600 s default timer)
    assert len(opt_tmpl) >= 4  # options templates: after every 2 messages of the session
    assert all(b - a <= 4 for a, b in itertools.pairwise(opt_tmpl))  # checked before each send


@pytest.mark.parametrize("version", [10, 9])
def test_send_templates_resends_every_template_now(sink: UdpSink, version: int) -> None:
    """``flowprobe send-templates``: a collector that lost them gets every Template and
    Options Template again at once, not at the next refresh, and the data that follows still
    decodes with them."""
    from probe.config.model import Config, ExportingProcess
    from probe.export import open_exporting_process

    ep = ExportingProcess(name="ep", destinations=(destination(sink, version=version),))
    rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
    now = SYS_INIT_US + 100_000_000
    rt.export(batch(30, 4), now)
    rt.export(batch(30, 6, seed=2), now)
    rt.flush(now)
    first = Decoder()
    announced = {(m.header["domain"], t[0]) for m in map(first.decode, sink.datagrams())
                 for t in m.templates}
    assert len(announced) >= 2  # IPv4 and IPv6 data templates (IPFIX: options ones too)
    assert rt.send_templates(now + 1000) == {ep.destinations[0].name:
                                             f"{len(announced)} templates sent"}
    rt.export(batch(10, 4, seed=5), now + 2000)
    rt.flush(now + 2000)
    fresh = Decoder()  # a collector that knew nothing before
    msgs = [fresh.decode(m) for m in sink.datagrams()]
    again = {(m.header["domain"], t[0]) for m in msgs for t in m.templates}
    assert again == announced
    assert sum(len(m.data) for m in msgs) == 10
    rt.close(now + 3000)


def test_send_templates_says_why_not(sink: UdpSink) -> None:
    from probe.config.model import Config, ExportingProcess
    from probe.export import open_exporting_process

    ep = ExportingProcess(name="ep", destinations=(destination(sink, version=5),))
    rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
    assert rt.send_templates(SYS_INIT_US) == {ep.destinations[0].name:
                                              "NetFlow v5 has no templates"}
    ep = ExportingProcess(name="ep", destinations=(destination(sink),))
    rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
    assert rt.send_templates(SYS_INIT_US) == {ep.destinations[0].name:
                                              "no templates yet (no record sent)"}
