"""The mapping's ``sflow`` section: bits of sampled headers' layers into flow fields.

goflow2's sample ``mapping.yaml`` reads the UDP and TCP checksums; a generated trace (IPv4
and IPv6, VLANs, fragments, ICMP, GRE stubs) is sampled whole into sFlow datagrams, one
sample per datagram (its sequence number names the packet), and every flow's ``csum`` is
checked against scapy's parse of the same frame. A crafted mapping reads header fields the
capture decoder also decodes (TTL, flow label, TCP flags at an odd bit offset, ports, ICMP
type, IPv4 id, addresses, a MAC), and each must equal the decoder's value in the same line.
Entries with ``encap: true`` read the packet inside GRE, IP-in-IP and 6in4 tunnels (and
Geneve when ``sflow.ports`` names it), checked against the capture decoder with tunnels open.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from pathlib import Path

import dpkt
import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import Ether

from probe.capture import DecodeStats, decode_batch
from probe.capture import linktypes as lt
from probe.collect import Decoder, FlowBatch
from probe.format import mapping
from probe.format.produce import Producer
from probe.format.proto import BinFormat
from probe.format.render import JsonFormat
from tests.collect import sflow_wire as w
from tests.format import protoc
from tests.format.errors import one_line
from tests.format.test_mapping import SAMPLE, needs_sample
from tools import encap, tracegen

ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
HEADER = 256  # octets of each frame an agent sends (more than any frame here: whole frames)


def _frames(tmp_path: Path, packets: int, **kw: object) -> list[bytes]:
    pcap = tmp_path / "trace.pcap"
    tracegen.generate(pcap, packets, seed=7, duration_s=10, **kw)  # type: ignore[arg-type]
    with pcap.open("rb") as f:
        return [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]


def _datagrams(frames: list[bytes], protocol: int = 1) -> list[bytes]:
    """One flow sample per datagram; datagram ``i`` samples frame ``i``."""
    return [w.datagram("192.0.2.1", i, [w.flow_sample([w.raw_header(
        f, protocol=protocol, keep=HEADER)], seq=i)]) for i, f in enumerate(frames)]


def _batches(datagrams: list[bytes], m: mapping.Mapping) -> list[FlowBatch]:
    d = Decoder()
    for dg in datagrams:
        d.feed(dg, "192.0.2.1", ("udp", "192.0.2.1", 6343, 6343), accept="sflow")
    producer = Producer(m)
    return [part for b in d.flush() for part in producer.apply(b)]


def _flows(datagrams: list[bytes], m: mapping.Mapping) -> dict[int, dict]:
    """Each flow's JSON line (all its fields, the mapping's renderers), by the packet it is."""
    js = JsonFormat(mapping.Mapping(render=m.render))
    lines = [json.loads(x) for x in js.chunk(_batches(datagrams, m)).splitlines()]
    flows = {f["sequence_num"]: f for f in lines if f.get("sample_type") != "counters"}
    assert len(flows) == len(datagrams)
    return flows


def _upper(frame: bytes) -> object | None:
    """scapy's first layer above the (outer) IP header and its extension headers; None for
    a later fragment, which has none."""
    pkt = Ether(frame)
    ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    if ip is None or (isinstance(ip, IP) and ip.frag):
        return None
    upper = ip.payload
    while isinstance(upper, IPv6ExtHdrHopByHop | IPv6ExtHdrRouting | IPv6ExtHdrDestOpt
                     | IPv6ExtHdrFragment):
        if isinstance(upper, IPv6ExtHdrFragment) and upper.offset:
            return None
        upper = upper.payload
    return upper


# ------------------------------------------------------------------ goflow2's sample
@needs_sample
def test_goflow2_sample_mapping_reads_the_checksums_scapy_reads(tmp_path: Path) -> None:
    frames = _frames(tmp_path, 3000)
    options = Ether(bytes(ETHER / IP(src="192.0.2.7", dst="192.0.2.8", options=b"\x01" * 8)
                          / TCP(sport=7, dport=8)))  # IPv4 options: TCP 28 octets into IP
    frames.append(bytes(options))
    m = mapping.load(SAMPLE)
    flows = _flows(_datagrams(frames), m)
    want: dict[int, int] = {}
    for i, frame in enumerate(frames):
        upper = _upper(frame)
        if type(upper) in (TCP, UDP):
            want[i] = upper.chksum  # type: ignore[union-attr]
    got = {i: f["csum"] for i, f in flows.items() if "csum" in f}
    assert got == want
    assert len(got) > 2000 and len(got) < len(frames)  # ICMP, GRE, later fragments: none
    # The line keeps the formatter's order, csum last, where a flow has it
    (line,) = [json.loads(x) for x in JsonFormat(m).chunk(
        _batches(_datagrams(frames[-1:]), m)).splitlines()]
    assert list(line)[-2:] == ["icmp_name", "csum"] and line["csum"] == options[TCP].chksum


# ------------------------------------------------------------------ known header fields
CRAFTED = {
    "formatter": {"protobuf": [
        {"name": "ttl_copy", "index": 1001}, {"name": "label_copy", "index": 1002},
        {"name": "flags_copy", "index": 1003}, {"name": "sport_copy", "index": 1004},
        {"name": "dport_le", "index": 1005}, {"name": "icmp_copy", "index": 1006},
        {"name": "id_copy", "index": 1007}, {"name": "src_copy", "index": 1008, "type": "bytes"},
        {"name": "dst_mac_copy", "index": 1009}, {"name": "version_copy", "index": 1010}],
        "render": {"src_copy": "ip"}},
    "sflow": {"mapping": [
        # goflow2's documented TTL example: one field from either family
        {"layer": "ipv4", "offset": 64, "length": 8, "destination": "ttl_copy"},
        {"layer": "ipv6", "offset": 56, "length": 8, "destination": "ttl_copy"},
        {"layer": "ipv6", "offset": 12, "length": 20, "destination": "label_copy"},
        {"layer": "tcp", "offset": 103, "length": 9, "destination": "flags_copy"},  # NS..FIN
        {"layer": "4", "offset": 0, "length": 16, "destination": "sport_copy"},
        {"layer": "4", "offset": 16, "length": 16, "destination": "dport_le",
         "endianness": "little"},
        {"layer": "icmp", "offset": 0, "length": 8, "destination": "icmp_copy"},
        {"layer": "icmp6", "offset": 0, "length": 8, "destination": "icmp_copy"},
        {"layer": "ipv4", "offset": 32, "length": 16, "destination": "id_copy"},
        {"layer": "ipv4", "offset": 96, "length": 32, "destination": "src_copy"},
        {"layer": "ipv6", "offset": 64, "length": 128, "destination": "src_copy"},
        {"layer": "ethernet", "offset": 0, "length": 48, "destination": "dst_mac_copy"},
        {"layer": "ip", "offset": 0, "length": 4, "destination": "version_copy"},
        {"layer": "ipv4", "offset": 64, "length": 8, "destination": "ip_ttl"}]}}  # existing


def _fragments() -> list[bytes]:
    """IPv4 and IPv6 datagrams in fragments: only the first has the upper-layer header."""
    v4 = IP(src="192.0.2.1", dst="192.0.2.2", id=77) / UDP(sport=1000, dport=2000) / (b"x" * 900)
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2", fl=5) / IPv6ExtHdrFragment(id=9) / \
        TCP(sport=3000, dport=4000) / (b"y" * 900)
    return [bytes(ETHER / f) for f in fragment(v4, 400)] + \
        [bytes(ETHER / f) for f in fragment6(v6, 500)]


def test_crafted_entries_read_what_the_capture_decoder_reads(tmp_path: Path) -> None:
    frames = _frames(tmp_path, 3000) + _fragments()
    flows = _flows(_datagrams(frames), mapping.parse(CRAFTED))
    counts = dict.fromkeys(("label", "flags", "ports", "icmp", "later"), 0)
    for f in flows.values():
        v6 = f["etype"] == 0x86DD
        assert f["ttl_copy"] == f["ip_ttl"] and f["version_copy"] == (6 if v6 else 4)
        assert f["src_copy"] == f["src_addr"]  # 32 or 128 bits, rendered as the address
        assert f["dst_mac_copy"] == int(f["dst_mac"].replace(":", ""), 16)
        assert ("label_copy" in f) == v6 and ("id_copy" in f) == (not v6)
        if v6:
            assert f["label_copy"] == f["ipv6_flow_label"]
            counts["label"] += 1
        else:
            assert f["id_copy"] == f["fragment_id"]
        assert ("flags_copy" in f) == (f["proto"] == 6 and "sport_copy" in f)
        if "flags_copy" in f:
            assert f["flags_copy"] == f["tcp_flags"]
            counts["flags"] += 1
        if "sport_copy" in f:
            assert f["proto"] in (6, 17)
            assert f["sport_copy"] == f["src_port"]
            assert f["dport_le"] == int.from_bytes(f["dst_port"].to_bytes(2, "big"), "little")
            counts["ports"] += 1
        elif f["proto"] in (6, 17):
            counts["later"] += 1  # a later fragment: no upper layer, no ports
            assert f["src_port"] == 0
        assert ("icmp_copy" in f) == (f["proto"] in (1, 58))
        if "icmp_copy" in f:
            assert f["icmp_copy"] == f["icmp_type"]
            counts["icmp"] += 1
    assert min(counts.values()) >= 5, counts


def test_headers_that_end_early_or_are_not_ethernet(tmp_path: Path) -> None:
    frame = bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9) / TCP(sport=1, dport=2))
    m = mapping.parse(CRAFTED)
    # 14 + 20 + 15 octets: the TCP flags (octet 13, and the NS bit before it) are there, the
    # checksum is not: a field is read only where every bit of it was captured
    cut = [w.datagram("192.0.2.1", 0, [w.flow_sample([w.raw_header(frame, keep=49)])])]
    (f,) = _flows(cut, m).values()
    assert f["flags_copy"] == f["tcp_flags"] == 0x02 and f["sport_copy"] == 1
    cut = [w.datagram("192.0.2.1", 0, [w.flow_sample([w.raw_header(frame, keep=35)])])]
    (f,) = _flows(cut, m).values()
    assert "sport_copy" not in f and "flags_copy" not in f and f["ttl_copy"] == 9
    # an IPv4 header record (header protocol 11): no Ethernet layer, the IP one at 0
    ip_only = _datagrams([frame[14:]], protocol=11)
    (f,) = _flows(ip_only, m).values()
    assert "dst_mac_copy" not in f and f["ttl_copy"] == 9 and f["sport_copy"] == 1


# ------------------------------------------------------------------ inside tunnels
ENCAP = {
    "formatter": {"protobuf": [
        {"name": "src_port_encap", "index": 1021, "type": "varint", "array": True},
        {"name": "src_ip_encap", "index": 1006, "type": "string", "array": True}],
        "render": {"src_ip_encap": "ip"}},
    "sflow": {"mapping": [  # goflow2's documented examples (mapping.md, "Encapsulation")
        {"layer": "udp", "encap": True, "offset": 0, "length": 16,
         "destination": "src_port_encap"},
        {"layer": "tcp", "encap": True, "offset": 0, "length": 16,
         "destination": "src_port_encap"},
        {"layer": "ipv6", "encap": True, "offset": 64, "length": 128,
         "destination": "src_ip_encap"},
        {"layer": "ipv4", "encap": True, "offset": 96, "length": 32,
         "destination": "src_ip_encap"}]}}


def _inner(frames: list[bytes], tunnels: frozenset[str]) -> dict[int, tuple[str, int]]:
    """The capture decoder's inner source address and port of each tunnelled frame."""
    buf = b"".join(frames)
    offsets = np.cumsum([0] + [len(f) for f in frames[:-1]])
    meta = np.array([(0, i, o, len(f)) for i, (o, f) in enumerate(zip(offsets, frames,
                                                                      strict=True))], np.uint32)
    b = decode_batch(buf, meta, lt.EN10MB, DecodeStats(), None, tunnels)
    out = {}
    for row, kind, v, src, port in zip(b.ts_us.tolist(), b.tunnel_kind.tolist(),
                                        b.ip_version.tolist(), b.src_addr, b.src_port.tolist(),
                                        strict=True):
        if kind:
            out[row] = (str(ipaddress.ip_address(bytes(src[:4] if v == 4 else src))), port)
    return out


@pytest.mark.parametrize("geneve", [False, True], ids=["defaults", "geneve-port"])
def test_encap_entries_read_the_packet_inside_a_tunnel(tmp_path: Path, geneve: bool) -> None:
    shares = dict.fromkeys(("gre", "ipip", "6in4", "geneve", "vxlan", "mpls"), 0.1)
    frames = _frames(tmp_path, 3000, encap=shares, snaplen=encap.MIN_SNAPLEN)
    doc = json.loads(json.dumps(ENCAP))
    if geneve:  # goflow2's sample mapping has this entry
        doc["sflow"]["ports"] = [{"proto": "udp", "dir": "both", "port": 6081,
                                  "parser": "geneve"}]
    flows = _flows(_datagrams(frames), mapping.parse(doc))
    opened = {"gre", "ipInIp", "ipv6InIp"} | ({"geneve"} if geneve else set())
    want = _inner(frames, frozenset(opened))
    got = {i: (f["src_ip_encap"], f.get("src_port_encap")) for i, f in flows.items()
           if "src_ip_encap" in f}
    assert got.keys() == want.keys() and len(got) > 500
    for i, (addr, port) in want.items():
        assert got[i][0] == [addr]
        # the inner header's port (a later fragment inside has none; ICMP neither)
        assert got[i][1] == ([port] if port else None)
        assert flows[i]["src_addr"] != addr  # the flow itself is the outer packet
    vxlan = [i for i, f in enumerate(frames) if b"\x12\xb5" in f[34:38]]  # UDP dport 4789
    assert vxlan and not any(i in got for i in vxlan)  # goflow2 does not open VXLAN


def test_ports_notes_and_mistakes(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(ENCAP))
    doc["sflow"]["ports"] = [{"proto": "udp", "dir": "dst", "port": 3544,
                              "parser": "teredo-dst"},
                             {"proto": "udp", "dir": "both", "port": 6081, "parser": "geneve"}]
    notes = mapping.port_notes(mapping.parse(doc))
    assert notes == ["sflow.ports[0]: teredo-dst on udp dst port 3544 is not opened: encap "
                     "entries read inside GRE, IP in IP, IPv6 in IP and Geneve on udp dst "
                     "port 6081 only"]
    del doc["sflow"]["mapping"]  # without encap entries the ports change nothing written
    assert mapping.port_notes(mapping.parse(doc)) == []
    for text, message in [
        ("sflow:\n  mapping:\n    - {layer: arp, offset: 0, length: 8, destination: x}\n",
         "sflow.mapping[0].layer: 'arp' is not one of"),
        ("sflow:\n  mapping:\n    - {layer: '0', encap: true, length: 8, destination: x}\n",
         "sflow.mapping[0].encap: layer 0 is the sampled frame's own"),
        ("sflow:\n  mapping:\n    - {layer: ipv6, offset: 60, length: 128, destination: x}\n",
         "sflow.mapping[0]: a field longer than 64 bits is octets: its offset and length"),
        ("sflow:\n  mapping:\n    - {layer: ipv6, offset: 64, length: 128, destination: x}\n",
         "sflow.mapping[0]: 128 bits do not make a number: declare 'x' in formatter.protobuf"),
        ("sflow:\n  ports:\n    - {proto: udp, dir: dst, port: 1, parser: vxlan}\n",
         "sflow.ports[0].parser: 'vxlan' is not one of goflow2's parsers"),
        ("sflow:\n  ports:\n    - {proto: sctp, dir: dst, port: 1, parser: gre}\n",
         "sflow.ports[0].proto: 'sctp' is neither udp nor tcp"),
    ]:
        line = one_line(mapping.load, tmp_path / "m.yaml", text)
        assert message in line, line


# ------------------------------------------------------------------ the binary format
@pytest.mark.skipif(shutil.which("protoc") is None, reason="protoc not installed")
@needs_sample
def test_mapped_sflow_fields_reach_the_binary_format(tmp_path: Path) -> None:
    frames = _frames(tmp_path, 300)
    m = mapping.load(SAMPLE)
    batches = _batches(_datagrams(frames), m)
    lines = [json.loads(x) for x in JsonFormat(m).chunk(batches).splitlines()]
    stream = BinFormat(m.protobuf).chunk(batches)
    proto = protoc.extended_proto(tmp_path, ["uint64 csum = 999;"])
    decoded = protoc.decode(stream, tmp_path, proto)
    assert len(decoded) == len(lines)
    assert [d.get("csum", [0]) for d in decoded] == [[x.get("csum", 0)] for x in lines]
    assert sum("csum" in x for x in lines) > 200
