"""Carriers between the link header and IP, always opened: MPLS label stacks (any depth up to
16, the first ten kept), PPPoE sessions with PPP inside, and Ethernet in an MPLS pseudowire
with the control word ("VLAN in MPLS"). Frames are crafted with scapy; the values checked are
the ones written into them."""

from __future__ import annotations

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE, PPPoED
from scapy.packet import Raw

from tests.capture.helpers import check_invariant, decode_frames, ether

V4 = IP(src="192.0.2.1", dst="198.51.100.2") / UDP(sport=1000, dport=53)
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=2000, dport=443, flags="S")


def _lse(label: int, tc: int = 0, s: int = 0, ttl: int = 64) -> int:
    return label << 12 | tc << 9 | s << 8 | ttl


def _stack(labels: list[int], ttl: int = 64) -> MPLS:
    stack = None
    for i, label in enumerate(labels):
        lse = MPLS(label=label, cos=i % 8, s=int(i == len(labels) - 1), ttl=ttl - i)
        stack = lse if stack is None else stack / lse
    assert stack is not None
    return stack


@pytest.mark.parametrize("depth", [1, 2, 3, 10, 12, 16])
def test_mpls_label_stacks_open_to_ip_and_keep_the_first_ten(tmp_path, depth):
    labels = [16 + 1000 * i for i in range(depth)]
    frames = [ether(type=0x8847) / _stack(labels) / V4, ether(type=0x8847) / _stack(labels) / V6]
    batch, stats = decode_frames(tmp_path, frames)
    check_invariant(stats)
    assert stats.packets_decoded == 2
    assert batch.ip_version.tolist() == [4, 6]
    assert batch.src_port.tolist() == [1000, 2000] and batch.dst_port.tolist() == [53, 443]
    assert batch.ip_len.tolist() == [28, 60]
    kept = [_lse(label, i % 8, int(i == depth - 1), 64 - i) for i, label in
            enumerate(labels[:10])]
    for row in batch.mpls_labels.tolist():
        assert row == kept + [0] * (10 - len(kept))


def test_mpls_multicast_vlan_before_and_ttl_exp(tmp_path):
    frames = [
        ether(type=0x8848) / MPLS(label=20, cos=5, s=1, ttl=9) / V4,
        ether() / Dot1Q(vlan=42, type=0x8847) / MPLS(label=30, s=1, ttl=1) / V6,
    ]
    batch, _ = decode_frames(tmp_path, frames)
    assert batch.vlan_id.tolist() == [0, 42]
    assert batch.mpls_labels[:, 0].tolist() == [_lse(20, 5, 1, 9), _lse(30, 0, 1, 1)]


def test_mpls_stacks_that_cannot_be_opened_are_counted(tmp_path):
    frames = [
        ether(type=0x8847) / _stack([16 + i for i in range(17)]) / V4,  # deeper than 16
        ether(type=0x8847) / MPLS(label=16, s=1) / Raw(b"\x10" + bytes(40)),  # nibble 1
        bytes(ether(type=0x8847) / MPLS(label=16, s=0) / MPLS(label=17, s=1))[:16],  # in a label
        ether(type=0x8847) / MPLS(label=16, s=1),  # nothing after the bottom label
        ether(type=0x8847) / MPLS(label=16, s=1) / Raw(bytes(IP())[:12]),  # IPv4 header cut
    ]
    batch, stats = decode_frames(tmp_path, frames)
    check_invariant(stats)
    assert len(batch) == 0
    assert stats.ignored == {"unsupported-link": 2, "too-short": 3}


def test_ethernet_pseudowire_with_control_word_vlan_in_mpls(tmp_path):
    """RFC 4448 with the RFC 4385 control word: the customer's VLAN-tagged frame is opened;
    its VID is the first tag met, the MACs stay those of the link the probe sees."""
    inner = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / Dot1Q(vlan=777) / V4
    frames = [
        ether(type=0x8847) / MPLS(label=100, s=0) / MPLS(label=200, s=1) / Raw(bytes(4))
        / inner,
        # a tag on the provider link comes first, so it is the one kept
        ether() / Dot1Q(vlan=5, type=0x8847) / MPLS(label=100, s=1) / Raw(bytes(4)) / inner,
    ]
    batch, stats = decode_frames(tmp_path, frames)
    assert stats.packets_decoded == 2
    assert batch.vlan_id.tolist() == [777, 5]
    assert batch.src_port.tolist() == [1000, 1000]
    assert batch.src_mac.tolist() == [0x021122334455] * 2
    assert (batch.mpls_labels[:, 0] >> 12).tolist() == [100, 100]


def _pppoe(payload: bytes, proto: int) -> bytes:
    return bytes(ether(type=0x8864) / PPPoE(sessionid=0x1234) / PPP(proto=proto) / Raw(payload))


def test_pppoe_sessions_carry_ipv4_ipv6_and_mpls(tmp_path):
    frames = [
        _pppoe(bytes(V4), 0x0021),
        _pppoe(bytes(V6), 0x0057),
        _pppoe(bytes(MPLS(label=99, s=1, ttl=3) / V4), 0x0281),
        # protocol-field compression: one octet
        bytes(ether(type=0x8864) / PPPoE(sessionid=1)) + b"\x21" + bytes(V4),
        bytes(ether() / Dot1Q(vlan=10, type=0x8864) / PPPoE(sessionid=2) / PPP(proto=0x57)
              / V6),
    ]
    batch, stats = decode_frames(tmp_path, frames)
    check_invariant(stats)
    assert stats.packets_decoded == 5
    assert batch.ip_version.tolist() == [4, 6, 4, 4, 6]
    assert batch.src_port.tolist() == [1000, 2000, 1000, 1000, 2000]
    assert batch.mpls_labels[:, 0].tolist() == [0, 0, _lse(99, 0, 1, 3), 0, 0]
    assert batch.vlan_id.tolist() == [0, 0, 0, 0, 10]


def test_pppoe_frames_without_ip(tmp_path):
    frames = [
        _pppoe(b"\x01\x01\x00\x04", 0xC021),  # LCP
        ether(type=0x8863) / PPPoED(),  # discovery stage
        bytes(ether(type=0x8864) / PPPoE(code=0x09)) + b"\x00\x21" + bytes(V4),  # not session
        bytes(ether(type=0x8864) / PPPoE())[:18],  # cut inside the PPPoE header
    ]
    batch, stats = decode_frames(tmp_path, frames)
    check_invariant(stats)
    assert len(batch) == 0
    assert stats.ignored == {"non-ip": 3, "too-short": 1}


def test_mpls_on_linux_cooked_captures(tmp_path):
    """Linux SLL names the ethertype too: the same walk opens MPLS and PPPoE there."""
    sll = bytes.fromhex("0004" "0001" "0006" "020000000001" "0000" "8847")
    frames = [sll + bytes(MPLS(label=16, s=1, ttl=8) / V4)]
    batch, _ = decode_frames(tmp_path, frames, linktype=113)
    assert batch.src_port.tolist() == [1000]
    assert batch.mpls_labels[:, 0].tolist() == [_lse(16, 0, 1, 8)]
