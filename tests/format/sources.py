"""Datagrams of every protocol the collector decodes, for the format tests: what ``flowprobe
replay`` exports for the demo capture as IPFIX, NetFlow v9 and v5 (recorded from a socket of
our own), and sFlow datagrams with every record kind (``tests.collect.sflow_wire``)."""

from __future__ import annotations

import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from probe.collect import Decoder, FlowBatch
from tests.collect import sflow_wire as w
from tests.export.peers import drain, udp_sink

DEMO = Path(__file__).resolve().parents[2] / "pcaps" / "demo.pcap"


def _exported(version: int) -> list[bytes]:
    with udp_sink() as sink:
        subprocess.run([sys.executable, "-m", "probe", "replay", str(DEMO), "--export",
                        f"udp://127.0.0.1:{sink.getsockname()[1]}", "--version", str(version),
                        "-q"], check=True, capture_output=True, timeout=60)
        return drain(sink)


def sflow_frames() -> tuple[bytes, bytes]:
    """The two packets the sFlow datagrams sample: IPv4 TCP, and tagged IPv6 UDP."""
    tcp = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                / IP(src="10.1.0.5", dst="10.1.1.9", tos=0x10, ttl=63, id=99)
                / TCP(sport=40000, dport=443, flags="PA") / (b"x" * 300))
    udp6 = bytes(Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04") / Dot1Q(vlan=100)
                 / IPv6(src="2001:db8:1::1", dst="2001:db8:2::1", fl=0x12345)
                 / UDP(sport=5353, dport=53) / b"q")
    return tcp, udp6


def sflow_datagrams() -> list[bytes]:
    tcp, udp6 = sflow_frames()
    return [
        w.datagram("192.0.2.1", 10, [
            w.flow_sample([w.raw_header(tcp), w.extended_switch(10, 20),
                           w.extended_router("192.0.2.254", 24, 16),
                           w.extended_gateway("198.51.100.1", 65000, 65001, [65002, 65003],
                                              [0xFDE80001, 0xFDE80002])], rate=512),
            w.counter_sample([w.if_counters(5, 1000, 2000)]),
        ]),
        w.datagram("2001:db8::ff", 11, [w.flow_sample_expanded([w.raw_header(udp6)])]),
    ]


@lru_cache(maxsize=1)
def all_datagrams() -> tuple[bytes, ...]:
    return tuple(_exported(10) + _exported(9) + _exported(5) + sflow_datagrams())


def decoded() -> list[FlowBatch]:
    """Every datagram decoded by one collector, as ``flowprobe collect`` would: fed, then
    flushed into batches."""
    d = Decoder()
    for dg in all_datagrams():
        d.feed(dg, "127.0.0.1", ("udp", "127.0.0.1", 1, 2), accept="flow")
    out = d.flush()
    assert not d.stats.malformed, d.stats.malformed
    return out


def flows(batches: list[FlowBatch]) -> list[dict]:
    """The JSON-line dicts of every row, batch after batch."""
    return [r.flow for b in batches for r in b.records()]
