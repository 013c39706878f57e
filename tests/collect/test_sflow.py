"""sFlow v5: datagrams packed from the specification (``sflow_wire``) and the tcpdump corpus
capture, decoded by the collector; the corpus cross-checked against tshark's sFlow decoder."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
from collections import Counter

import dpkt
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet

from probe.collect import Collector, Decoder
from tests.collect import sflow_wire as w
from tests.collect.wire import ipfix_message, ipfix_set, ipfix_template
from tests.helpers import CORPUS

AGENT = "192.0.2.1"
T = 1_800_000_000_000_000_000


def _frame(p: Packet) -> bytes:
    return bytes(p)


TCP_FRAME = _frame(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                   / IP(src="10.1.2.3", dst="10.9.8.7", tos=0x10, ttl=63, id=4242)
                   / TCP(sport=40000, dport=443, flags="SA") / (b"x" * 300))


def _decode(*datagrams: bytes) -> tuple[Decoder, list[dict]]:
    """Every datagram fed, then one flush: the batches as one JSON-line dict per record."""
    d = Decoder()
    for dg in datagrams:
        d.feed(dg, "127.0.0.1", received_ns=T, accept="sflow")
    return d, [r.flow for b in d.flush() for r in b.records()]


def test_flow_sample_with_extended_records() -> None:
    dg = w.datagram(AGENT, 77, [w.flow_sample([
        w.raw_header(TCP_FRAME),
        w.extended_switch(10, 20),
        w.extended_router("192.0.2.254", 24, 16),
        w.extended_gateway("198.51.100.1", 65000, 65001, [65002, 65003], [0xFDE80001]),
    ], rate=512, in_if=3, out_if=7)])
    d, (f,) = _decode(dg)
    assert f == {
        "type": "SFLOW_5", "time_received_ns": T, "sequence_num": 77, "sampling_rate": 512,
        "sampler_address": AGENT, "time_flow_start_ns": T, "time_flow_end_ns": T,
        "bytes": len(TCP_FRAME) + 4, "packets": 1,
        "src_addr": "10.1.2.3", "dst_addr": "10.9.8.7", "etype": 0x800, "proto": 6,
        "src_port": 40000, "dst_port": 443, "icmp_type": 0, "icmp_code": 0, "ip_tos": 0x10,
        "ip_ttl": 63, "tcp_flags": 0x12, "fragment_id": 4242,
        "src_mac": "02:00:00:00:00:01", "dst_mac": "02:00:00:00:00:02", "vlan_id": 0,
        "in_if": 3, "out_if": 7, "src_vlan": 10, "dst_vlan": 20,
        "next_hop": "192.0.2.254", "src_net": 24, "dst_net": 16,
        "bgp_next_hop": "198.51.100.1", "src_as": 65001, "dst_as": 65003,
        "next_hop_as": 65002, "as_path": [65002, 65003], "bgp_communities": [0xFDE80001],
    }
    assert d.stats.messages["SFLOW_5"] == 1 and d.stats.records == 1
    assert d.stats.sflow["flow_samples"] == 1 and not d.stats.malformed


def test_expanded_sample_ipv6_in_a_vlan() -> None:
    frame = _frame(Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04") / Dot1Q(vlan=100)
                   / IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0x12345, tc=0x20, hlim=9)
                   / UDP(sport=5353, dport=53) / b"q")
    dg = w.datagram("2001:db8::ff", 5, [w.flow_sample_expanded(
        [w.raw_header(frame, stripped=0)], rate=256, in_if=(0, 70000), out_if=(2, 3))])
    _, (f,) = _decode(dg)
    assert f["sampler_address"] == "2001:db8::ff"
    assert (f["src_addr"], f["dst_addr"], f["etype"], f["proto"]) == \
        ("2001:db8::1", "2001:db8::2", 0x86DD, 17)
    assert (f["src_port"], f["dst_port"], f["vlan_id"], f["ipv6_flow_label"]) == \
        (5353, 53, 100, 0x12345)
    assert (f["ip_tos"], f["ip_ttl"], f["bytes"], f["sampling_rate"]) == \
        (0x20, 9, len(frame), 256)
    assert (f["in_if"], f["out_if"]) == (70000, 3)  # the expanded form's value words
    assert "fragment_id" not in f


def test_raw_ipv4_header_icmp_and_sampled_ipv4_record() -> None:
    ip = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=1) / (b"z" * 40))
    dg = w.datagram(AGENT, 1, [
        w.flow_sample([w.raw_header(ip, protocol=11, stripped=0)]),
        w.flow_sample([w.sampled_ipv4("192.0.2.7", "198.51.100.9", 17, 123, 456, length=76,
                                      tos=8)]),
    ])
    _, (icmp, sampled) = _decode(dg)
    assert (icmp["proto"], icmp["icmp_type"], icmp["icmp_code"], icmp["bytes"]) == \
        (1, 3, 1, len(ip))
    assert "src_mac" not in icmp and "vlan_id" not in icmp
    assert {k: sampled[k] for k in ("src_addr", "dst_addr", "proto", "src_port", "dst_port",
                                    "bytes", "ip_tos", "etype", "packets")} == \
        {"src_addr": "192.0.2.7", "dst_addr": "198.51.100.9", "proto": 17, "src_port": 123,
         "dst_port": 456, "bytes": 76, "ip_tos": 8, "etype": 0x800, "packets": 1}


def test_samples_the_capture_decoder_cannot_open_still_count() -> None:
    arp = _frame(Ether(src="02:00:00:00:00:05", dst="ff:ff:ff:ff:ff:ff") / ARP())
    dg = w.datagram(AGENT, 1, [
        w.flow_sample([w.raw_header(arp)]),
        w.flow_sample([w.raw_header(b"\x00" * 40, protocol=13, frame_length=90)]),  # MPLS
        w.flow_sample([(0x7 << 12 | 5, b"\x01\x02\x03\x04")]),  # an enterprise's record
    ])
    d, flows = _decode(dg)
    assert [(f["packets"], f["bytes"]) for f in flows] == [(1, len(arp) + 4), (1, 90), (1, 0)]
    assert all("src_addr" not in f for f in flows)
    c = d.stats.sflow
    assert (c["header non-ip"], c["header protocol 13"], c["skipped flow record 7:5"]) == \
        (1, 1, 1)
    assert "sflow: flow samples 3, counter samples 0, lost datagrams 0; headers decoded 0 " \
        "of 1 (header non-ip 1, header protocol 13 1, skipped flow record 7:5 1)" in \
        d.stats.format()


def test_counter_samples_are_records_of_their_own() -> None:
    dg = w.datagram(AGENT, 9, [
        w.counter_sample([w.if_counters(5, 1000, 2000), (7, b"\xab\xcd\xef\x01")], seq=4,
                         source=5),
        w.flow_sample([w.raw_header(TCP_FRAME)]),
    ], sub_agent=2)
    d, (flow, counters) = _decode(dg)  # a batch of flows, then one of counters
    assert counters["sample_type"] == "counters" and "sample_type" not in flow
    assert {k: counters[k] for k in ("type", "sequence_num", "sampler_address", "sub_agent_id",
                                     "sample_sequence_num", "source_id_type",
                                     "source_id_index")} == \
        {"type": "SFLOW_5", "sequence_num": 9, "sampler_address": AGENT, "sub_agent_id": 2,
         "sample_sequence_num": 4, "source_id_type": 0, "source_id_index": 5}
    assert (counters["if_index"], counters["if_speed"], counters["if_in_octets"],
            counters["if_out_octets"], counters["if_in_ucast_pkts"],
            counters["if_out_ucast_pkts"]) == (5, 10**9, 1000, 2000, 10, 20)
    assert counters["counters_0_7"] == "abcdef01"
    assert d.stats.sflow["counter_samples"] == 1 and d.stats.records == 1


def test_every_truncation_is_counted_never_raised() -> None:
    dg = w.datagram(AGENT, 1, [
        w.flow_sample([w.raw_header(TCP_FRAME), w.extended_gateway("198.51.100.1", 1, 2,
                                                                   [3, 4], [5])]),
        w.counter_sample([w.if_counters(1, 2, 3)]),
    ])
    d = Decoder()
    for n in range(len(dg)):
        assert d.decode(dg[:n], "127.0.0.1", accept="sflow") == []
    assert sum(d.stats.malformed.values()) == len(dg)
    assert d.stats.messages["SFLOW_5"] == 0 and d.stats.sflow["flow_samples"] == 0
    assert len(d.decode(dg, "127.0.0.1", accept="sflow")) == 2


def test_hostile_counts_and_types() -> None:
    d = Decoder()
    head = w.datagram(AGENT, 1, [])[:-4]
    d.decode(head + b"\xff\xff\xff\xff", "x", accept="sflow")  # 4 billion samples
    d.decode(b"\x00\x00\x00\x05\x00\x00\x00\x07" + b"\x00" * 40, "x", accept="sflow")
    many = w.flow_sample([w.extended_switch(1, 2)] * 65)
    d.decode(w.datagram(AGENT, 1, [many]), "x", accept="sflow")
    assert d.stats.malformed == {"sflow_too_many_samples": 1, "sflow_bad_address_type": 1,
                                 "sflow_too_many_records": 1}


def test_batch_equals_one_at_a_time_and_sequence_gaps() -> None:
    frames = [_frame(Ether() / IP(src=f"10.0.0.{i}", dst="10.0.1.1") / UDP(sport=i, dport=9))
              for i in range(1, 7)]
    dgs = [w.datagram(AGENT, seq, [w.flow_sample([w.raw_header(f)]) for f in frames[i:i + 2]])
           for i, seq in zip(range(0, 6, 2), (1, 2, 5), strict=True)]
    dgs.insert(1, b"\x00\x00\x00\x05junk")  # a bad one between good ones
    d, batched = _decode(*dgs)
    single = Decoder()
    one_by_one = [r.flow for dg in dgs
                  for r in single.decode(dg, "127.0.0.1", received_ns=T, accept="sflow")]
    assert batched == one_by_one
    assert [f["src_port"] for f in batched] == list(range(1, 7))
    assert d.stats.sflow["lost_datagrams"] == 2 == single.stats.sflow["lost_datagrams"]


def test_listeners_take_what_their_scheme_says() -> None:
    sflow = w.datagram(AGENT, 1, [w.flow_sample([w.raw_header(TCP_FRAME)])])
    ipfix = ipfix_message_with_one_record()
    seen = {}
    for scheme in ("sflow", "netflow", "flow"):
        with Collector([f"{scheme}://127.0.0.1:0"]) as c:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(sflow, ("127.0.0.1", c.port))
                s.sendto(ipfix, ("127.0.0.1", c.port))
            c.wait_idle(0.3)
            c.stop()
            seen[scheme] = (sorted(r["type"] for r in c.records()), dict(c.stats.malformed))
            assert c.bound[0].url().startswith(f"{scheme}://127.0.0.1:")
    assert seen == {"sflow": (["SFLOW_5"], {"not_sflow": 1}),
                    "netflow": (["IPFIX"], {"sflow_on_netflow_listener": 1}),
                    "flow": (["IPFIX", "SFLOW_5"], {})}


def ipfix_message_with_one_record() -> bytes:
    template = ipfix_set(2, ipfix_template(256, [(8, 4), (12, 4)]))
    data = ipfix_set(256, bytes([10, 0, 0, 1, 10, 0, 0, 2]))
    return ipfix_message([template, data])


def _corpus_datagrams() -> list[tuple[str, bytes]]:
    out = []
    with open(CORPUS / "sflow-print-v6.pcap", "rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            out.append((str(ipaddress.ip_address(ip.src)), bytes(ip.data.data)))
    return out


@pytest.mark.skipif(not (CORPUS / "sflow-print-v6.pcap").exists(), reason="corpus not here")
def test_corpus_capture_decodes_as_tshark_reads_it() -> None:
    d = Decoder()
    flows = [r.flow for src, dg in _corpus_datagrams()
             for r in d.decode(dg, src, accept="sflow")]
    assert not d.stats.malformed
    c = d.stats.sflow
    assert (d.stats.messages["SFLOW_5"], c["flow_samples"], c["counter_samples"]) == \
        (25, 13, 48)
    assert c["headers_decoded"] == 13 and not any(k.startswith("skipped") for k in c)
    ours = Counter((f["sequence_num"], f["src_addr"], f["dst_addr"], f["proto"], f["in_if"],
                    f["bytes"]) for f in flows if "sample_type" not in f)
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    out = subprocess.run(
        ["tshark", "-r", str(CORPUS / "sflow-print-v6.pcap"), "-Y", "sflow_245.sampletype == 1",
         "-T", "fields", "-E", "occurrence=a", "-e", "sflow_245.sequence_number", "-e",
         "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "sflow.flow_sample.input_interface",
         "-e", "sflow_245.header.frame_length"], capture_output=True, text=True, check=True)
    theirs: Counter = Counter()
    for line in out.stdout.splitlines():
        seq, *cols = line.split("\t")
        for src, dst, proto, in_if, length in zip(*(c.split(",") for c in cols), strict=True):
            theirs[(int(seq), src, dst, int(proto), int(in_if), int(length))] += 1
    assert ours == theirs and sum(ours.values()) == 13
