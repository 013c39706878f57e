"""TCP framing and the in-process Collector on real loopback sockets (IPv4 and IPv6)."""

from __future__ import annotations

import socket
import struct

import pytest

from probe.collect import Collector
from probe.collect.framing import StreamFramer
from probe.errors import UserError
from tests.collect.wire import (
    ipfix_message,
    ipfix_set,
    ipfix_template,
    ipv4,
    v5_packet,
    v9_packet,
    v9_template,
)

R5 = {"src": ipv4("10.0.0.1"), "dst": ipv4("10.0.0.2"), "packets": 1, "bytes": 40, "first": 0,
      "last": 0, "sport": 1, "dport": 2, "proto": 17}


def _fs(fs_id: int, body: bytes) -> bytes:
    return struct.pack(">HH", fs_id, 4 + len(body)) + body


def _v9_pair(seq: int) -> bytes:
    t = _fs(0, v9_template(300, [(8, 4), (2, 4)]))
    data = _fs(300, struct.pack(">II", ipv4("10.1.1.1"), 5) * 3)
    return v9_packet([t, data], seq=seq, count=4)  # 1 template + 3 data records


def test_framer_splits_v5_v9_ipfix_streams_byte_by_byte() -> None:
    ipfix = ipfix_message([ipfix_set(2, ipfix_template(256, [(8, 4)])),
                           ipfix_set(256, b"\x01\x02\x03\x04")])
    msgs = [v5_packet([R5, R5]), _v9_pair(0), _v9_pair(1), ipfix]
    f = StreamFramer(lambda s, t: None, 65536)
    out: list[bytes] = []
    for byte in b"".join(msgs):
        got, problem = f.feed(bytes([byte]))
        assert problem is None
        out += got
    assert out == msgs and f.flush() == b""


def test_framer_v9_with_unknown_template_ends_at_next_header() -> None:
    data_only = v9_packet([_fs(300, b"\x00" * 16)], count=2)  # template unknown: count unsure
    f = StreamFramer(lambda s, t: None, 65536)
    got, _ = f.feed(data_only + data_only)
    assert got == [data_only]  # the second header (version 9) ended the first message
    assert f.flush() == data_only


def test_framer_refuses_other_versions_and_oversized_buffers() -> None:
    assert StreamFramer(lambda s, t: None, 100).feed(b"\x00\x07" + b"\x00" * 30)[1] == \
        "bad_version"
    assert StreamFramer(lambda s, t: None, 100).feed(struct.pack(">HH", 10, 8))[1] == \
        "tcp_bad_length"
    big = struct.pack(">HH", 10, 60000) + b"\x00" * 200
    assert StreamFramer(lambda s, t: None, 100).feed(big)[1] == "tcp_buffer_limit"


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_collector_udp_and_tcp_endpoints(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    addr = host.strip("[]")
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe_sock:
            probe_sock.bind((addr, 0))
    except OSError:
        pytest.skip(f"{addr} not available")
    with Collector([f"udp://{host}:0", f"tcp://{host}:0"]) as c:
        udp, tcp = c.bound
        assert (udp.transport, tcp.transport) == ("udp", "tcp") and udp.port and tcp.port
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.sendto(v5_packet([R5, R5]), (addr, udp.port))
        with socket.create_connection((addr, tcp.port)) as s:
            s.sendall(_v9_pair(0) + _v9_pair(1))
        c.wait_idle(0.3)
        c.stop()
        recs = list(c.records())
    assert sorted(r["type"] for r in recs) == ["NETFLOW_V5"] * 2 + ["NETFLOW_V9"] * 6
    assert {r["sampler_address"] for r in recs} == {addr}
    v9 = [r for r in recs if r["type"] == "NETFLOW_V9"]
    assert all(r["raw"] == {"sourceIPv4Address": ipv4("10.1.1.1"), "packetDeltaCount": 5}
               for r in v9)
    assert c.stats.lost_packets == 0 and not c.stats.malformed


def test_collector_tcp_templates_die_with_the_connection() -> None:
    with Collector(["tcp://127.0.0.1:0"]) as c:
        data_only = v9_packet([_fs(300, struct.pack(">II", 1, 1))], count=1)
        with socket.create_connection(("127.0.0.1", c.port)) as s:
            s.sendall(_v9_pair(0))
        c.wait_idle(0.3)
        with socket.create_connection(("127.0.0.1", c.port)) as s:
            s.sendall(data_only)  # a new session: the old template does not apply
        c.wait_idle(0.3)
        c.stop()
        recs = list(c.records())
    assert len(recs) == 3
    assert c.stats.malformed["held_never_resolved"] + \
        c.stats.malformed["held_dropped_session_closed"] == 1


def test_collector_bad_listen_url() -> None:
    with pytest.raises(UserError, match="scheme must be"):
        Collector(["sctp://127.0.0.1:0"])
