"""The generator's encapsulated traces (``--encap``): every kind is what it says it is, the inner
packets are the plain trace's, and both the inner and the outer totals are what scapy, a
decoder independent of the generator and of flowprobe, finds in the file."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.layers.ppp import PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from scapy.utils import rdpcap

from tools import encap, tracegen

EVERY = {kind: 0.1 for kind in encap.KINDS}


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("encap") / "e.pcap"
    return path, tracegen.generate(path, 3000, seed=4, snaplen=encap.MIN_SNAPLEN, totals=True,
                                   mix=tracegen.Mix(ipv6=0.4, vlan=0.2), encap=EVERY)


def _ips(pkt) -> list:
    layers, layer = [], pkt
    while layer is not None and not isinstance(layer, Raw):
        if isinstance(layer, IP | IPv6) and not isinstance(layer.underlayer, ICMP):
            layers.append(layer)
        layer = layer.payload if layer.payload else None
    return layers


def _key(ip) -> tuple:
    proto = ip.proto if isinstance(ip, IP) else ip.nh
    sport = dport = 0
    first = not isinstance(ip, IP) or ip.frag == 0
    upper = ip.payload
    if first and isinstance(upper, TCP | UDP) and proto in (6, 17):
        sport, dport = upper.sport, upper.dport
    elif proto in (1, 58):
        dport = bytes(upper)[0] << 8
    return (4 if isinstance(ip, IP) else 6, proto, ip.src, ip.dst, sport, dport)


def _length(ip) -> int:
    return ip.len if isinstance(ip, IP) else 40 + ip.plen


def _totals(arr: np.ndarray) -> dict[tuple, tuple[int, int]]:
    out = {}
    for r in arr:
        w = 16 if r["ip_version"] == 6 else 4
        out[(int(r["ip_version"]), int(r["proto"]), str(ipaddress.ip_address(bytes(r["src"][:w]))),
             str(ipaddress.ip_address(bytes(r["dst"][:w]))), int(r["sport"]),
             int(r["dport"]))] = (int(r["packets"]), int(r["ip_octets"]))
    return out


def test_inner_and_outer_totals_are_what_scapy_decodes(trace: tuple[Path, dict]) -> None:
    path, summary = trace
    inner: Counter[tuple] = Counter()
    outer: Counter[tuple] = Counter()
    for pkt in rdpcap(str(path)):
        ips = _ips(pkt)
        for ip, into in ((ips[-1], inner), (ips[0], outer)):
            into[(*_key(ip), "p")] += 1
            into[(*_key(ip), "b")] += _length(ip)
    assert {k[:6]: (inner[(*k[:6], "p")], inner[(*k[:6], "b")]) for k in inner} == _totals(
        summary["totals"])
    assert {k[:6]: (outer[(*k[:6], "p")], outer[(*k[:6], "b")]) for k in outer} == _totals(
        summary["outer_totals"])


def test_every_kind_is_in_the_file_as_it_should_be(trace: tuple[Path, dict]) -> None:
    path, summary = trace
    assert all(n > 0 for n in summary["encap"].values()), summary["encap"]
    seen: Counter[str] = Counter()
    teids: dict[tuple, set[int]] = {}
    for pkt in rdpcap(str(path)):
        ips = _ips(pkt)
        if len(ips) > 1:
            outer = ips[0]
            tunnel = outer.payload  # the outermost tunnel's header
            if isinstance(tunnel, GRE):
                seen["gre"] += 1
            elif isinstance(tunnel, UDP) and isinstance(tunnel.payload, VXLAN):
                assert tunnel.dport == 4789 and tunnel.payload.flags & 0x08
                seen["vxlan"] += 1
            elif isinstance(tunnel, UDP) and isinstance(tunnel.payload, GENEVE):
                assert tunnel.dport == 6081 and tunnel.payload.proto == 0x6558
                seen["geneve"] += 1
            elif isinstance(tunnel, UDP):
                gtp = tunnel.payload
                assert isinstance(gtp, GTP_U_Header) and gtp.gtp_type == 255
                assert tunnel.sport == tunnel.dport == 2152
                teids.setdefault(tuple(sorted((outer.src, outer.dst))), set()).add(gtp.teid)
                seen["gtpu"] += 1
            else:
                seen["6in4" if isinstance(tunnel, IPv6) else "ipip"] += 1
            # the outer IP length fills the frame on the wire (or Ethernet pads it to 60)
            before = len(bytes(pkt)) - len(bytes(outer))
            assert max(before + _length(outer), 60) == pkt.wirelen
        elif MPLS in pkt:
            stack, layer = [], pkt[MPLS]
            while isinstance(layer, MPLS):
                stack.append(layer)
                layer = layer.payload
            assert stack[-1].s == 1 and all(m.s == 0 for m in stack[:-1])
            if Ether in layer:  # Ethernet pseudowire: control word, then a tagged frame
                assert len(stack) == 2 and stack[-1].label in encap.PW_LABELS
                assert bytes(pkt[MPLS].payload.payload)[:4] == bytes(4)
                seen["vlan-mpls"] += 1
            else:
                assert 1 <= len(stack) <= 3
                seen["mpls"] += 1
        elif PPPoE in pkt:
            assert pkt[PPPoE].version == 1 and pkt[PPPoE].type == 1 and pkt[PPPoE].code == 0
            assert pkt[PPPoE].len == 2 + _length(ips[0])
            seen["pppoe"] += 1
    assert seen == Counter(summary["encap"])
    assert all(len(ids) == 2 for ids in teids.values())  # one TEID per direction


def test_inner_packets_are_the_plain_traces(tmp_path: Path, trace: tuple[Path, dict]) -> None:
    path, summary = trace
    plain = tracegen.generate(tmp_path / "p.pcap", 3000, seed=4, snaplen=encap.MIN_SNAPLEN,
                              totals=True, mix=tracegen.Mix(ipv6=0.4, vlan=0.2, gre=0.0))
    assert (plain["totals"] == summary["totals"]).all()
    again = tracegen.generate(tmp_path / "again.pcap", 3000, seed=4, snaplen=encap.MIN_SNAPLEN,
                              mix=tracegen.Mix(ipv6=0.4, vlan=0.2), encap=EVERY)
    assert (tmp_path / "again.pcap").read_bytes() == path.read_bytes()
    assert again["encap"] == summary["encap"]


def test_snaplen_cuts_frames_but_not_headers(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    tracegen.generate(path, 500, seed=2, snaplen=encap.MIN_SNAPLEN, encap=EVERY)
    caps = [len(p) for p in rdpcap(str(path))]
    assert max(caps) == encap.MIN_SNAPLEN
    with pytest.raises(ValueError, match="snaplen must be at least 160 with --encap"):
        tracegen.generate(path, 10, snaplen=159, encap={"gre": 1.0})


def test_cli_encap_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, npz = tmp_path / "t.pcap", tmp_path / "t.npz"
    assert tracegen.main([str(out), "--packets", "400", "--snaplen", "200", "--encap",
                          "gtpu=0.5,mpls=0.5", "--totals", str(npz)]) == 0
    with np.load(npz) as z:
        assert set(z.files) == {"totals", "outer_totals"}
        assert z["outer_totals"]["packets"].sum() == z["totals"]["packets"].sum() == 400
    for bad, words in (("nope=0.1", "unknown kind 'nope'"), ("gre=2", "not between 0 and 1"),
                       ("gre=x", "is not a number"), ("gre=0.6,vxlan=0.6", "add up to 1.2")):
        assert tracegen.main([str(out), "--packets", "10", "--snaplen", "200", "--encap",
                              bad]) == 2
        assert words in capsys.readouterr().err
    assert tracegen.main([str(out), "--packets", "10", "--encap", "gre=0.5"]) == 2
    assert "snaplen must be at least 160" in capsys.readouterr().err
