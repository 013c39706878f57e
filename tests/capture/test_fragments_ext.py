"""IPv4 fragments and IPv6 extension-header chains: the upper layer and what the key may use."""

from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Raw

from tests.capture.helpers import PCAPS, check_invariant, decode_frames, ether, read_all


def test_committed_ipv4_fragments():
    batch, stats = read_all(PCAPS / "ipv4-frag.pcap")
    check_invariant(stats)
    # A 3008-octet UDP datagram in three fragments, then a 2008-octet ping in two.
    assert batch.proto.tolist() == [17, 17, 17, 1, 1]
    assert batch.fragment.tolist() == [1, 2, 2, 1, 2]
    assert batch.frag_id.tolist() == [4242, 4242, 4242, 4343, 4343]
    # Only the first fragment has ports / ICMP type; the rest count as softflowd counts them.
    assert batch.src_port.tolist() == [6000, 0, 0, 0, 0]
    assert batch.dst_port.tolist() == [7000, 0, 0, 0, 0]
    assert batch.icmp_type.tolist() == [0, 0, 0, 8, 0]
    assert int(batch.ip_len[:3].sum()) - 2 * 20 == 20 + 8 + 3000


def test_committed_ipv6_extension_chains():
    batch, stats = read_all(PCAPS / "ipv6-ext.pcap")
    check_invariant(stats)
    assert stats.packets_decoded == 9
    assert batch.next_header.tolist() == [0, 43, 60, 0, 44, 44, 51, 50, 0]
    assert batch.proto.tolist() == [17, 6, 17, 6, 17, 17, 58, 50, 59]
    assert batch.src_port.tolist() == [40001, 1, 40001, 10, 40001, 0, 0, 0, 0]
    assert batch.dst_port.tolist() == [40002, 2, 40002, 20, 40002, 0, 0, 0, 0]
    assert batch.tcp_flags.tolist() == [0, 0x02, 0, 0x18, 0, 0, 0, 0, 0]
    assert batch.fragment.tolist() == [0, 0, 0, 0, 1, 2, 0, 0, 0]
    assert batch.frag_id.tolist() == [0, 0, 0, 0, 0xDEADBEEF, 0xDEADBEEF, 0, 0, 0]
    assert batch.icmp_type.tolist() == [0, 0, 0, 0, 0, 0, 128, 0, 0]  # behind AH


def test_extension_chain_cut_by_snaplen_is_too_short(tmp_path):
    frame = (ether() / IPv6(src="2001:db8::1") / IPv6ExtHdrHopByHop(options=[])
             / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2))
    # 14 + 40 + 8 leaves the destination-options header outside a 62-octet snap.
    batch, stats = decode_frames(tmp_path, [frame], snaplen=62)
    assert len(batch) == 0
    assert stats.ignored == {"too-short": 1}


def test_extension_header_longer_than_payload_is_bad_length(tmp_path):
    ipv6 = bytearray(bytes(IPv6(src="2001:db8::1") / IPv6ExtHdrRouting() / UDP()))
    ipv6[40 + 1] = 30  # routing header claims 248 octets in a 16-octet payload
    batch, stats = decode_frames(tmp_path, [bytes(ether(type=0x86DD)) + bytes(ipv6)])
    assert len(batch) == 0
    assert stats.ignored == {"bad-header-length": 1}


def test_atomic_and_first_fragments_keep_ports(tmp_path):
    frames = [
        ether() / IPv6() / IPv6ExtHdrFragment(id=1, m=0, offset=0) / UDP(sport=8, dport=9),
        ether() / IP(flags="MF", id=77) / UDP(sport=10, dport=11) / Raw(b"a" * 8),
        ether() / IP(frag=3, id=77, proto=17) / Raw(b"b" * 8),
    ]
    batch, _ = decode_frames(tmp_path, frames)
    assert batch.src_port.tolist() == [8, 10, 0]
    assert batch.fragment.tolist() == [0, 1, 2]
    assert batch.frag_id.tolist() == [1, 77, 77]


def test_slow_path_rows_stay_in_capture_order(tmp_path):
    plain = ether() / IPv6(src="2001:db8::1") / UDP(sport=1, dport=1)
    chained = ether() / IPv6(src="2001:db8::2") / IPv6ExtHdrHopByHop() / UDP(sport=2, dport=2)
    frames = [plain, chained, plain, chained, chained, plain]
    batch, _ = decode_frames(tmp_path, frames)
    assert batch.src_port.tolist() == [1, 2, 1, 2, 2, 1]
    assert batch.ts_us.tolist() == sorted(batch.ts_us.tolist())
