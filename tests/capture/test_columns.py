"""Every PacketBatch column, for crafted packets whose header values are known."""

from __future__ import annotations

import ipaddress

import numpy as np
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1AD, Dot1Q
from scapy.packet import Raw

from probe.capture import COLUMNS, PacketBatch
from probe.capture.batch import PAYLOAD_HEAD
from tests.capture.helpers import (
    DST_MAC,
    SRC_MAC,
    TS,
    addr,
    check_invariant,
    decode_frames,
    ether,
    read_all,
    write_frames,
)

# The columns of a packet with no MPLS label and no tunnel.
PLAIN = {"mpls_labels": bytes(40), "tunnel_kind": 0, "tunnel_id": 0, "outer_version": 0,
         "outer_src": bytes(16), "outer_dst": bytes(16)}


def _mac_int(text: str) -> int:
    return int(text.replace(":", ""), 16)


def row(batch: PacketBatch, i: int = 0) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in COLUMNS:
        value = getattr(batch, name)[i]
        out[name] = bytes(value) if value.shape else int(value)
    return out


def test_ipv4_tcp_every_column(tmp_path):
    frame = (
        ether()
        / Dot1Q(vlan=123)
        / IP(src="192.0.2.1", dst="198.51.100.2", tos=0xB8, ttl=17, id=0xBEEF)
        / TCP(sport=12345, dport=443, flags="SEC")
        / Raw(b"x" * 10)
    )
    raw = bytearray(bytes(frame))
    raw[18 + 20 + 12] |= 1  # the NS bit lives in the low bit of the data-offset octet
    batch, stats = decode_frames(tmp_path, [bytes(raw)])
    assert len(batch) == 1 and stats.packets_decoded == 1
    assert row(batch) == {
        "ts_us": int(TS * 1_000_000),
        "ip_version": 4,
        "src_addr": ipaddress.ip_address("192.0.2.1").packed + bytes(12),
        "dst_addr": ipaddress.ip_address("198.51.100.2").packed + bytes(12),
        "proto": 6,
        "src_port": 12345,
        "dst_port": 443,
        "icmp_type": 0,
        "icmp_code": 0,
        "tos": 0xB8,
        "ttl": 17,
        "ip_len": 20 + 20 + 10,
        "tcp_flags": 0x100 | 0x80 | 0x40 | 0x02,  # NS, CWR, ECE, SYN
        "flow_label": 0,
        "frag_id": 0xBEEF,
        "fragment": 0,
        "next_header": 0,
        "vlan_id": 123,
        "src_mac": _mac_int(SRC_MAC),
        "dst_mac": _mac_int(DST_MAC),
        "ip_word1": 0xBEEF_0000,  # identification, then flags and fragment offset (none)
        "payload_head": bytes(raw[18 + 20:]).ljust(PAYLOAD_HEAD, b"\0"),  # TCP header + data
        "payload_head_len": 20 + 10,
        "l3_offset": 14 + 4,
        "l4_offset": 14 + 4 + 20,
        **PLAIN,
        # packet sections, none wide unless asked for (test_packet_sections)
        "frame_len": len(raw), "frame_section": b"", "frame_section_len": len(raw),
        "ip_section": b"", "ip_section_len": 20 + 20 + 10,
        "payload_section": b"", "payload_section_len": 20 + 10,
    }


def test_ipv6_udp_every_column(tmp_path):
    frame = (
        ether()
        / IPv6(src="2001:db8::1", dst="2001:db8:ffff::2", tc=0x2E, fl=0xFEDCB, hlim=3)
        / UDP(sport=53, dport=40000)
        / Raw(b"y" * 7)
    )
    batch, _ = decode_frames(tmp_path, [frame])
    assert row(batch) == {
        "ts_us": int(TS * 1_000_000),
        "ip_version": 6,
        "src_addr": ipaddress.ip_address("2001:db8::1").packed,
        "dst_addr": ipaddress.ip_address("2001:db8:ffff::2").packed,
        "proto": 17,
        "src_port": 53,
        "dst_port": 40000,
        "icmp_type": 0,
        "icmp_code": 0,
        "tos": 0x2E,
        "ttl": 3,
        "ip_len": 40 + 8 + 7,
        "tcp_flags": 0,
        "flow_label": 0xFEDCB,
        "frag_id": 0,
        "fragment": 0,
        "next_header": 17,
        "vlan_id": 0,
        "src_mac": _mac_int(SRC_MAC),
        "dst_mac": _mac_int(DST_MAC),
        "ip_word1": (8 + 7) << 16 | 17 << 8 | 3,  # payload length, next header, hop limit
        "payload_head": bytes(frame)[14 + 40:].ljust(PAYLOAD_HEAD, b"\0"),
        "payload_head_len": 8 + 7,
        "l3_offset": 14,
        "l4_offset": 14 + 40,
        **PLAIN,
        "frame_len": 14 + 40 + 8 + 7, "frame_section": b"", "frame_section_len": 14 + 40 + 15,
        "ip_section": b"", "ip_section_len": 40 + 15,
        "payload_section": b"", "payload_section_len": 15,
    }


def test_icmp_type_and_code_and_no_ports(tmp_path):
    frames = [
        ether() / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(type=3, code=13),
        ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoReply(id=5, seq=6),
    ]
    batch, _ = decode_frames(tmp_path, frames)
    assert batch.proto.tolist() == [1, 58]
    assert batch.icmp_type.tolist() == [3, 129]
    assert batch.icmp_code.tolist() == [13, 0]
    assert batch.src_port.tolist() == [0, 0] and batch.dst_port.tolist() == [0, 0]
    assert batch.tcp_flags.tolist() == [0, 0]


def test_ipv4_options_use_ihl(tmp_path):
    frame = ether() / IP(src="192.0.2.1", dst="192.0.2.2", options=b"\x01" * 8) / UDP(
        sport=7, dport=9
    )
    batch, _ = decode_frames(tmp_path, [frame])
    assert (batch.src_port[0], batch.dst_port[0]) == (7, 9)
    assert batch.ip_len[0] == 28 + 8


def test_outermost_vlan_of_qinq(tmp_path):
    frame = ether() / Dot1AD(vlan=300) / Dot1Q(vlan=12) / IP(src="192.0.2.1") / UDP()
    batch, _ = decode_frames(tmp_path, [frame])
    assert batch.vlan_id.tolist() == [300]
    assert addr(batch, "src_addr")[:4] == bytes([192, 0, 2, 1])


def test_ethernet_padding_not_counted(tmp_path):
    frame = bytes(ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(flags="A")).ljust(60, b"\0")
    batch, _ = decode_frames(tmp_path, [frame])
    assert batch.ip_len.tolist() == [40]


def test_snaplen_truncation_keeps_real_length_and_reads_what_was_captured(tmp_path):
    frames = [
        ether() / IP(src="192.0.2.1") / TCP(sport=1, dport=2, flags="PA") / Raw(b"z" * 1000),
        # 14 + 40 + 10 = 64: the TCP header is cut after 10 octets. Its ports (the first 4)
        # were captured and are read (as tshark and pmacctd read them; softflowd shows 0); its
        # flags (octet 13) were not: 0.
        ether() / IPv6(src="2001:db8::1") / TCP(sport=3, dport=4, flags="PA") / Raw(b"z" * 1000),
        ether() / IPv6(src="2001:db8::1") / UDP(sport=5, dport=6) / Raw(b"z" * 1000),
        # 14 + 40 + 8 (hop-by-hop) + 2: only the source port's octets: no ports, still metered.
        ether() / IPv6(src="2001:db8::1") / IPv6ExtHdrHopByHop() / UDP(sport=7, dport=8)
        / Raw(b"z" * 1000),
        # ICMP type and code need 2 octets: 14 + 40 + 8 + 2 = 64.
        ether() / IPv6(src="2001:db8::1") / IPv6ExtHdrHopByHop()
        / ICMPv6EchoReply(id=5, seq=6) / Raw(b"z" * 100),
    ]
    batch, stats = decode_frames(tmp_path, frames, snaplen=64)
    assert stats.packets_decoded == 5
    assert batch.ip_len.tolist() == [1040, 1060, 1048, 1056, 156]
    assert batch.src_port.tolist() == [1, 3, 5, 0, 0]
    assert batch.dst_port.tolist() == [2, 4, 6, 0, 0]
    assert batch.tcp_flags.tolist() == [0x18, 0, 0, 0, 0]
    assert batch.icmp_type.tolist() == [0, 0, 0, 0, 129]
    # The upper layer starts after the extension chain, cut or not.
    assert batch.l3_offset.tolist() == [14] * 5
    assert batch.l4_offset.tolist() == [34, 54, 54, 62, 62]


def test_transport_fields_need_their_own_octets(tmp_path):
    """Cut one octet short of each transport field: it reads 0; with the octet, its value."""
    tcp = ether() / IP(src="192.0.2.1") / TCP(sport=11, dport=12, flags="S") / Raw(b"z" * 50)
    icmp = ether() / IP(src="192.0.2.1") / ICMP(type=3, code=4) / Raw(b"z" * 50)
    cases = [(tcp, 14 + 20 + 3), (tcp, 14 + 20 + 4), (tcp, 14 + 20 + 13), (tcp, 14 + 20 + 14),
             (icmp, 14 + 20 + 1), (icmp, 14 + 20 + 2)]
    for i, (frame, snaplen) in enumerate(cases):
        batch, _ = decode_frames(tmp_path, [frame], snaplen=snaplen)
        got = (int(batch.src_port[0]), int(batch.dst_port[0]), int(batch.tcp_flags[0]),
               int(batch.icmp_type[0]), int(batch.icmp_code[0]))
        assert got == [(0, 0, 0, 0, 0), (11, 12, 0, 0, 0), (11, 12, 0, 0, 0), (11, 12, 2, 0, 0),
                       (0, 0, 0, 0, 0), (0, 0, 0, 3, 4)][i], snaplen


def test_all_columns_have_contract_dtypes(tmp_path):
    batch, stats = decode_frames(tmp_path, [ether() / IP() / UDP(), ether() / IPv6() / TCP()])
    check_invariant(stats)
    for name, (dtype, shape) in COLUMNS.items():
        column = getattr(batch, name)
        assert column.dtype == np.dtype(dtype), name
        assert column.shape == (2, *shape), name


def test_zero_length_fields_take_the_frame_length(tmp_path):
    """TSO / BIG TCP captures write 0 in the length field; tshark and softflowd use the frame."""
    v4 = bytearray(bytes(ether() / IP(src="192.0.2.1") / TCP(sport=1, dport=2) / Raw(b"d" * 960)))
    v4[14 + 2 : 14 + 4] = b"\0\0"
    v6 = bytearray(bytes(ether() / IPv6(src="2001:db8::1") / UDP(sport=3, dport=4) / (b"e" * 92)))
    v6[14 + 4 : 14 + 6] = b"\0\0"
    batch, _ = decode_frames(tmp_path, [bytes(v4), bytes(v6)])
    assert batch.ip_len.tolist() == [1000, 140]
    assert batch.src_port.tolist() == [1, 3]


def test_payload_head_starts_after_ipv4_options_and_stops_at_the_ip_end(tmp_path):
    """The hash input's payload octets: after the options, never the Ethernet padding."""
    from scapy.layers.inet import IPOption_NOP

    padded = ether() / IP(src="192.0.2.1", dst="192.0.2.2", options=[IPOption_NOP()] * 4) \
        / UDP(sport=1, dport=2) / Raw(b"ab")
    raw = bytes(padded).ljust(60, b"\xee")  # Ethernet minimum: padding after the IP packet
    batch, _ = decode_frames(tmp_path, [raw])
    assert int(batch.payload_head_len[0]) == 8 + 2
    assert bytes(batch.payload_head[0]) == raw[14 + 24:14 + 24 + 10].ljust(PAYLOAD_HEAD, b"\0")


def test_payload_head_keeps_only_what_the_snaplen_captured(tmp_path):
    frame = bytes(ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP() / Raw(b"z" * 200))
    batch, _ = decode_frames(tmp_path, [frame], snaplen=14 + 20 + 12)
    assert int(batch.payload_head_len[0]) == 12
    assert bytes(batch.payload_head[0]) == frame[34:46].ljust(PAYLOAD_HEAD, b"\0")


def test_packet_sections_stop_where_the_packet_or_the_capture_does(tmp_path):
    """PSAMP sections (RFC 5477 §8.2): the frame's section has its Ethernet padding, the IP
    ones end with the IP packet; a snap length cuts them all, yet the frame's size stays the
    real one (link header + IP length). Zeros stand for what is not there."""
    padded = bytes(ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(flags="A")).ljust(60,
                                                                                        b"\x55")
    big = bytes(ether() / IP(src="192.0.2.1") / UDP(sport=1, dport=2) / Raw(b"z" * 1000))
    widths = {"frame_section": 80, "ip_section": 48, "payload_section": 24}
    path = write_frames(tmp_path / "s.pcap", [padded, big], snaplen=64)
    batch, _ = read_all(path, widths=widths)
    assert batch.frame_len.tolist() == [60, 14 + 1028]
    assert batch.frame_section_len.tolist() == [60, 64]
    assert batch.ip_section_len.tolist() == [40, 50]
    assert batch.payload_section_len.tolist() == [20, 30]
    sections = [bytes(batch.frame_section[i]) for i in range(2)]
    assert sections == [padded.ljust(80, b"\0"), big[:64].ljust(80, b"\0")]
    assert bytes(batch.ip_section[0]) == padded[14:54].ljust(48, b"\0")  # no padding
    assert bytes(batch.ip_section[1]) == big[14:62]
    assert bytes(batch.payload_section[0]) == padded[34:54].ljust(24, b"\0")
    assert bytes(batch.payload_section[1]) == big[34:58]
