"""Tunnels, each switched on or off: on, the inner packet is metered and the outermost tunnel's
kind, id and outer addresses are kept; off, the outer packet is metered as before. Frames are
crafted with scapy; the values checked are the ones written into them."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from probe.capture import batch as tk
from probe.config.model import TUNNELS
from tests.capture.helpers import check_invariant, decode_frames, ether

INNER4 = IP(src="10.1.1.1", dst="10.2.2.2", ttl=30) / TCP(sport=1111, dport=80, flags="S")
INNER6 = IPv6(src="2001:db8:a::1", dst="2001:db8:b::2") / UDP(sport=2222, dport=53) / Raw(b"q" * 9)
ETH_IN = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02")
OUT4 = IP(src="192.0.2.1", dst="192.0.2.2")
OUT6 = IPv6(src="2001:db8::a", dst="2001:db8::b")


def _a(text: str) -> bytes:
    return ipaddress.ip_address(text).packed.ljust(16, b"\0")


# (name, switch, frame, tunnel kind, tunnel id, inner family, inner ports, outer family)
CASES = [
    ("gre", "gre", ether() / OUT4 / GRE(proto=0x0800) / INNER4, tk.GRE, 0, 4, (1111, 80), 4),
    ("gre-key-csum-seq", "gre",
     ether() / OUT6 / GRE(chksum_present=1, key_present=1, seqnum_present=1, key=0xDEADBEEF,
                          sequence_number=7, proto=0x86DD) / INNER6,
     tk.GRE, 0xDEADBEEF, 6, (2222, 53), 6),
    ("nvgre", "gre",
     ether() / OUT4 / GRE(key_present=1, key=0x12345601, proto=0x6558) / ETH_IN / INNER4,
     tk.NVGRE, 0x12345601, 4, (1111, 80), 4),
    ("gre-mpls", "gre",
     ether() / OUT4 / GRE(proto=0x8847) / MPLS(label=500, s=1, ttl=5) / INNER6,
     tk.GRE, 0, 6, (2222, 53), 4),
    ("vxlan", "vxlan",
     ether() / OUT4 / UDP(sport=49152, dport=4789) / VXLAN(vni=0xABCDE) / ETH_IN
     / Dot1Q(vlan=99) / INNER4, tk.VXLAN, 0xABCDE, 4, (1111, 80), 4),
    ("vxlan-v6", "vxlan",
     ether() / OUT6 / UDP(sport=49153, dport=4789) / VXLAN(vni=1) / ETH_IN / INNER6,
     tk.VXLAN, 1, 6, (2222, 53), 6),
    ("geneve", "geneve",
     ether() / OUT4 / UDP(sport=5000, dport=6081) / GENEVE(vni=0x777, proto=0x6558) / ETH_IN
     / INNER6, tk.GENEVE, 0x777, 6, (2222, 53), 4),
    ("geneve-options-ip", "geneve",
     ether() / OUT6 / UDP(sport=5000, dport=6081)
     / GENEVE(vni=0x10, proto=0x0800, optionlen=2, options=bytes.fromhex("0102030400000000"))
     / INNER4, tk.GENEVE, 0x10, 4, (1111, 80), 6),
    ("gtpu", "gtpU",
     ether() / OUT4 / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0x01020304) / INNER4,
     tk.GTPU, 0x01020304, 4, (1111, 80), 4),
    ("gtpu-extension", "gtpU",
     ether() / OUT6 / UDP(sport=40000, dport=2152)
     / GTP_U_Header(teid=9, E=1, next_ex=0x85) / GTPPDUSessionContainer(type=1, QFI=9)
     / INNER6, tk.GTPU, 9, 6, (2222, 53), 6),
    ("ipip", "ipInIp", ether() / IP(src="192.0.2.1", dst="192.0.2.2", proto=4) / INNER4,
     tk.IPIP, 0, 4, (1111, 80), 4),
    ("ipip-in-v6", "ipInIp", ether() / IPv6(src="2001:db8::a", dst="2001:db8::b", nh=4)
     / INNER4, tk.IPIP, 0, 4, (1111, 80), 6),
    ("6in4", "ipv6InIp", ether() / IP(src="192.0.2.1", dst="192.0.2.2", proto=41) / INNER6,
     tk.IPV6IP, 0, 6, (2222, 53), 4),
]


@pytest.mark.parametrize(("name", "switch", "frame", "kind", "tid", "family", "ports", "outer"),
                         CASES, ids=[c[0] for c in CASES])
def test_each_tunnel_opened_when_switched_on(tmp_path, name, switch, frame, kind, tid, family,
                                             ports, outer):
    batch, stats = decode_frames(tmp_path, [frame], tunnels=[switch])
    check_invariant(stats)
    assert stats.packets_decoded == 1
    inner = INNER4 if family == 4 else INNER6
    assert batch.ip_version.tolist() == [family]
    assert (int(batch.src_port[0]), int(batch.dst_port[0])) == ports
    assert bytes(batch.src_addr[0]) == _a(inner.src) and bytes(batch.dst_addr[0]) == _a(inner.dst)
    assert batch.ip_len.tolist() == [len(inner)]
    assert batch.proto.tolist() == [inner.proto if family == 4 else inner.nh]
    out = frame[IP] if outer == 4 else frame[IPv6]
    assert batch.tunnel_kind.tolist() == [kind] and batch.tunnel_id.tolist() == [tid]
    assert batch.outer_version.tolist() == [outer]
    assert bytes(batch.outer_src[0]) == _a(out.src) and bytes(batch.outer_dst[0]) == _a(out.dst)
    assert batch.src_mac.tolist() == [0x021122334455]  # the link's, not the inner frame's
    # The layers' offsets are the inner packet's: where its IP header sits in the frame.
    raw = bytes(frame)
    at = raw.rindex(bytes(inner))
    assert batch.l3_offset.tolist() == [at]
    assert batch.l4_offset.tolist() == [at + (20 if family == 4 else 40)]  # no options


@pytest.mark.parametrize(("name", "switch", "frame"), [(c[0], c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_tunnel_metered_as_the_outer_packet_when_off(tmp_path, name, switch, frame):
    others = [t for t in TUNNELS if t != switch]
    for tunnels in ((), others):
        batch, stats = decode_frames(tmp_path, [frame], tunnels=tunnels)
        out = frame.getlayer(1)  # the outer IP header
        assert stats.packets_decoded == 1
        assert bytes(batch.src_addr[0]) == _a(out.src)
        assert batch.ip_len.tolist() == [len(out)]
        assert batch.tunnel_kind.tolist() == [0] and not batch.outer_src.any()


def test_tunnel_packets_that_carry_nothing_to_meter_stay_outer(tmp_path):
    frames = [
        ether() / OUT4 / GRE(version=1, proto=0x880B) / Raw(b"\xff\x03\x00\x21" + bytes(INNER4)),
        ether() / OUT4 / GRE(routing_present=1, proto=0x0800) / INNER4,
        ether() / OUT4 / GRE(proto=0x88BE) / Raw(bytes(8)) / ETH_IN / INNER4,  # ERSPAN II
        ether() / OUT4 / UDP(sport=1, dport=4789) / VXLAN(flags=0, vni=3) / ETH_IN / INNER4,
        ether() / OUT4 / UDP(sport=1, dport=6081) / GENEVE(critical=0, oam=1, proto=0x6558)
        / ETH_IN / INNER4,
        ether() / OUT4 / UDP(sport=2152, dport=2152) / GTP_U_Header(gtp_type=1, teid=0),  # echo
        ether() / OUT4 / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=5) / Raw(b"\x20" * 30),
    ]
    batch, stats = decode_frames(tmp_path, frames, tunnels=TUNNELS)
    check_invariant(stats)
    assert stats.packets_decoded == len(frames)
    assert batch.src_addr[:, :4].tolist() == [[192, 0, 2, 1]] * len(frames)
    assert batch.proto.tolist() == [47, 47, 47, 17, 17, 17, 17]
    assert not batch.tunnel_kind.any()


def test_cut_tunnel_and_inner_headers_are_too_short(tmp_path):
    vxlan = bytes(ether() / OUT4 / UDP(sport=1, dport=4789) / VXLAN(vni=3) / ETH_IN / INNER4)
    gre = bytes(ether() / OUT4 / GRE(key_present=1, key=1, proto=0x0800) / INNER4)
    gtp = bytes(ether() / OUT4 / UDP(sport=2152, dport=2152)
                / GTP_U_Header(teid=9, E=1, next_ex=0x85) / GTPPDUSessionContainer(QFI=1)
                / INNER4)
    frames = [
        vxlan[:14 + 20 + 8 + 4],  # inside the VXLAN header
        vxlan[:14 + 20 + 8 + 8 + 14 + 10],  # inside the inner IPv4 header
        gre[:14 + 20 + 6],  # inside the GRE key
        gtp[:14 + 20 + 8 + 12 + 2],  # inside the extension header
        gtp[:14 + 20 + 8 + 12 + 4],  # after it, before the inner packet
    ]
    batch, stats = decode_frames(tmp_path, frames, tunnels=TUNNELS)
    check_invariant(stats)
    assert len(batch) == 0 and stats.ignored == {"too-short": 5}


def test_outer_fragments_are_not_opened(tmp_path):
    frame = ether() / IP(src="192.0.2.1", dst="192.0.2.2", flags="MF") / GRE() / INNER4
    batch, _ = decode_frames(tmp_path, [frame], tunnels=["gre"])
    assert batch.proto.tolist() == [47] and batch.tunnel_kind.tolist() == [0]


def test_nested_tunnels_keep_the_outermost(tmp_path):
    """GRE inside VXLAN inside MPLS: the innermost packet is metered; the VXLAN is the
    tunnel whose id and outer addresses are kept, and the MPLS labels are the link's."""
    frame = (ether(type=0x8847) / MPLS(label=77, s=1) / OUT4 / UDP(sport=9, dport=4789)
             / VXLAN(vni=42) / ETH_IN / IP(src="172.16.0.1", dst="172.16.0.2")
             / GRE(key_present=1, key=5) / INNER4)
    batch, stats = decode_frames(tmp_path, [frame], tunnels=TUNNELS)
    assert stats.packets_decoded == 1
    assert bytes(batch.src_addr[0]) == _a("10.1.1.1")
    assert batch.tunnel_kind.tolist() == [tk.VXLAN] and batch.tunnel_id.tolist() == [42]
    assert bytes(batch.outer_src[0]) == _a("192.0.2.1")
    assert (batch.mpls_labels[:, 0] >> 12).tolist() == [77]
    # with VXLAN off the GRE inside it is out of reach: the labelled outer packet is metered
    batch, _ = decode_frames(tmp_path, [frame], tunnels=["gre"])
    assert batch.dst_port.tolist() == [4789] and batch.tunnel_kind.tolist() == [0]


def test_inner_icmp_and_mixed_batches_keep_capture_order(tmp_path):
    frames = [
        ether() / IP(src="192.0.2.9", dst="192.0.2.8") / UDP(sport=7, dport=8),
        ether() / OUT4 / GRE() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, code=0),
        ether() / OUT6 / UDP(sport=3, dport=4789) / VXLAN(vni=2) / ETH_IN / INNER6,
        ether() / IPv6(src="2001:db8::9", dst="2001:db8::8") / TCP(sport=5, dport=6),
    ]
    batch, _ = decode_frames(tmp_path, frames, tunnels=TUNNELS)
    assert batch.ip_version.tolist() == [4, 4, 6, 6]
    assert batch.proto.tolist() == [17, 1, 17, 6]
    assert batch.icmp_type.tolist() == [0, 8, 0, 0]
    assert batch.src_port.tolist() == [7, 0, 2222, 5]
    assert batch.tunnel_kind.tolist() == [0, tk.GRE, tk.VXLAN, 0]


def test_tunnels_on_raw_ip_links(tmp_path):
    frames = [bytes(OUT4 / GRE() / INNER4), bytes(OUT6 / UDP(dport=2152) / GTP_U_Header(teid=3)
                                                  / INNER6)]
    batch, _ = decode_frames(tmp_path, frames, linktype=101, tunnels=TUNNELS)
    assert batch.src_port.tolist() == [1111, 2222]
    assert batch.tunnel_id.tolist() == [0, 3]


def test_tunnels_without_ip_inside_stay_outer(tmp_path):
    """VXLAN carrying ARP: opened, nothing to meter inside, so the outer packet is metered
    (its VLAN is the outer frame's, not the inner frame's)."""
    from scapy.layers.l2 import ARP

    frame = (ether() / OUT4 / UDP(sport=1, dport=4789) / VXLAN(vni=8) / ETH_IN / Dot1Q(vlan=9)
             / ARP(psrc="10.0.0.1", pdst="10.0.0.2"))
    batch, stats = decode_frames(tmp_path, [frame], tunnels=TUNNELS)
    assert stats.packets_decoded == 1 and batch.dst_port.tolist() == [4789]
    assert batch.vlan_id.tolist() == [0] and batch.tunnel_kind.tolist() == [0]
    assert batch.ip_len.tolist() == [len(frame[IP])]


def test_gre_mirrors_and_redirects(tmp_path):
    """ERSPAN I (bare), II (8 octets with S), III (12 octets, frame type Ethernet) and WCCP
    (a 4-octet redirect header before IPv4) ride in GRE and open with it."""
    erspan2 = bytes.fromhex("1064" "0000" "00000000")  # ver 1, session 100, index 0
    erspan3 = bytes.fromhex("2064" "0000" "12345678" "00000000")  # ver 2, ft 0, no O
    frames = [
        ether() / OUT4 / GRE(proto=0x88BE) / ETH_IN / INNER4,
        ether() / OUT4 / GRE(seqnum_present=1, proto=0x88BE, sequence_number=5)
        / Raw(erspan2) / ETH_IN / INNER6,
        ether() / OUT4 / GRE(seqnum_present=1, proto=0x22EB) / Raw(erspan3) / ETH_IN / INNER4,
        ether() / OUT4 / GRE(proto=0x883E) / Raw(bytes(4)) / INNER4,
        # ERSPAN III with a frame type other than Ethernet: not opened
        ether() / OUT4 / GRE(proto=0x22EB) / Raw(bytes.fromhex("2064000012345678" "00000800"))
        / INNER4,
    ]
    batch, stats = decode_frames(tmp_path, frames, tunnels=["gre"])
    assert stats.packets_decoded == 5
    assert batch.src_port.tolist() == [1111, 2222, 1111, 1111, 0]
    assert batch.tunnel_kind.tolist() == [tk.GRE] * 4 + [0]


# Issue 17's columns: MPLS labels and what a tunnel leaves behind.
NEW_COLUMNS = {"mpls_labels", "tunnel_kind", "tunnel_id", "outer_version", "outer_src",
               "outer_dst"}


def test_the_new_columns_cost_nothing_unless_a_layout_reads_them(tmp_path):
    """Default layouts decode none of them (tunnels still opened: the key is the inner
    packet's); an MPLS and tunnel layout decodes exactly the ones its IEs read, and its
    records are those of decoding every column."""
    from dataclasses import replace

    from probe.config.defaults import default_config
    from probe.pipeline import columns_for_point
    from tests.test_columns import _fields, _records
    from tools import encap, tracegen

    path = tmp_path / "encap.pcap"
    tracegen.generate(path, 6000, seed=8, snaplen=encap.MIN_SNAPLEN, duration_s=120,
                      encap={kind: 0.1 for kind in encap.KINDS})
    config = default_config(str(path))
    op = replace(config.observation_points[0], tunnels=TUNNELS)
    assert not columns_for_point(op) & NEW_COLUMNS
    layout = _fields(("sourceIPv4Address", "mplsTopLabelStackSection", "UPSTREAM_TUNNEL_ID"),
                     ("packetDeltaCount", "mplsTopLabelTTL", "UNTUNNELED_IPV6_SRC_ADDR",
                      "layer2SegmentId"))
    cache = replace(config.caches[0], layout=layout)
    sp = replace(config.selection_processes[0], cache=cache)
    op = replace(op, selection_processes=(sp,))
    config = replace(config, observation_points=(op,), selection_processes=(sp,),
                     caches=(cache,))
    assert columns_for_point(op) & NEW_COLUMNS == {"mpls_labels", "tunnel_id", "tunnel_kind",
                                                   "outer_version", "outer_src"}
    assert _records(config, prune=True) == _records(config, prune=False)


def test_garbage_behind_every_carrier_and_tunnel_never_raises():
    """Random octets behind MPLS, PPPoE, tags and each tunnel's outer header, every tunnel on:
    no exception, the stats add up, and what decodes is IPv4 or IPv6."""
    import numpy as np

    from probe.capture import DecodeStats, decode_batch
    from tests.capture.helpers import check_invariant

    rng = np.random.default_rng(17)
    heads = [ether(type=t) for t in (0x8847, 0x8848, 0x8864, 0x8100)] + [
        ether() / OUT4 / GRE(), ether() / IP(src="1.2.3.4", proto=4),
        ether() / IP(src="1.2.3.4", proto=41), ether() / OUT6 / GRE(key_present=1),
        *(ether() / OUT4 / UDP(dport=port) for port in (4789, 6081, 2152)),
    ]
    # Lengths in the outer headers cover the garbage, so every tunnel stage gets to read it.
    frames = [bytes(heads[i % len(heads)] / Raw(rng.integers(0, 256, int(rng.integers(0, 90)),
                                                             np.uint8).tobytes()))
              for i in range(3000)]
    sizes = np.array([len(f) for f in frames])
    meta = np.zeros((len(frames), 4), dtype=np.uint32)
    meta[:, 2] = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    meta[:, 3] = sizes
    stats = DecodeStats()
    batch = decode_batch(b"".join(frames), meta, 1, stats, tunnels=frozenset(TUNNELS))
    check_invariant(stats)
    assert len(batch) == stats.packets_decoded > 0
    assert set(np.unique(batch.ip_version).tolist()) <= {4, 6}
