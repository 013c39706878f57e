"""filterMatch and filterHash: which packets they select, and that probes configured alike
select the same ones wherever they observe them (RFC 5475 §6.2.1.1, trajectory sampling)."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import numpy as np
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from probe.capture import COLUMNS, open_offline
from probe.capture.batch import PacketBatch
from probe.config import load_data, model
from probe.pipeline import Pipeline, columns_for_point
from probe.selection import build_selector
from probe.selection.filters import FilterHashSelector, hash_input
from tests.cache.synth import record_set
from tests.capture.helpers import PCAPS, decode_frames, ether, read_all
from tests.config.helpers import sample
from tests.helpers import RecordingSink
from tools import tracegen

SIXTEENTH = (model.HashRange(name="r", min=0, max=2**28 - 1),)


def hash_cfg(function: str = "BOB", **kw: object) -> model.FilterHash:
    top = model.HASH_OUTPUT_MAX[function]
    ranges = kw.pop("ranges", (model.HashRange(name="r", min=0, max=top // 4),))
    return model.FilterHash(name="h", hash_function=function, ranges=ranges,  # type: ignore
                            **kw)


def select(cfg: model.Selector, batch: PacketBatch, size: int = 65536) -> np.ndarray:
    sel = build_selector(cfg)
    return np.concatenate([sel.select(batch.take(np.arange(i, min(i + size, len(batch)))))
                           for i in range(0, len(batch), size)] or [np.zeros(0, bool)])


# ---------------------------------------------------------------- the hash input, octet by octet
def test_ipv4_hash_input_is_id_flags_offset_addresses_and_payload(tmp_path: Path) -> None:
    frame = ether() / IP(src="192.0.2.1", dst="198.51.100.7", id=0xABCD, flags="DF", ttl=9,
                         tos=0xB8) / TCP(sport=1000, dport=80, seq=0x01020304) / Raw(b"data")
    batch, _ = decode_frames(tmp_path, [frame])
    keys, lengths = hash_input(batch, 0, 8)
    tcp = bytes(frame[TCP])
    assert bytes(keys[0, :lengths[0]]) == (bytes.fromhex("abcd4000") + bytes([192, 0, 2, 1])
                                           + bytes([198, 51, 100, 7]) + tcp[:8])
    keys, lengths = hash_input(batch, 20, 32)  # past the TCP header: 4 octets of data left
    assert bytes(keys[0, :lengths[0]]) == bytes(keys[0, :12]) + b"data"
    assert not keys[0, lengths[0]:].any()


def test_ipv6_hash_input_is_payload_length_host_octets_and_payload(tmp_path: Path) -> None:
    src, dst = "2001:db8::a0b:c0d:e0f", "2001:db8:1:2:3:4:5:6"
    frame = ether() / IPv6(src=src, dst=dst, hlim=3) / TCP(sport=1, dport=2) / Raw(b"q" * 5)
    batch, _ = decode_frames(tmp_path, [frame])
    keys, lengths = hash_input(batch, 0, 8)
    s, d = bytes(frame[IPv6])[8:24], bytes(frame[IPv6])[24:40]
    host = [9, 10, 13, 14, 15]  # octets 10, 11, 14, 15, 16 as RFC 5475 counts them
    assert bytes(keys[0, :lengths[0]]) == ((20 + 5).to_bytes(2, "big") + bytes(s[i] for i in host)
                                           + bytes(d[i] for i in host) + bytes(frame[TCP])[:8])


def test_hash_of_a_packet_equals_jenkins_code(tmp_path: Path) -> None:
    """A packet whose hash input is printable, so Digest::JHash (the RFC's BOB in C, initval
    0) computes it too: perl -MDigest::JHash -e 'print Digest::JHash::jhash("ABCDabcdefghXY")'
    """
    frame = ether() / IP(src="97.98.99.100", dst="101.102.103.104", id=0x4142, flags=0,
                         frag=0x4344 & 0x1FFF, proto=200) / Raw(b"XY")
    raw = bytearray(bytes(frame))
    raw[14 + 6:14 + 8] = b"CD"  # flags and fragment offset octets as text
    batch, _ = decode_frames(tmp_path, [bytes(raw)])
    keys, lengths = hash_input(batch, 0, 8)
    assert bytes(keys[0, :lengths[0]]) == b"ABCDabcdefghXY"
    sel = FilterHashSelector(hash_cfg())
    assert int(sel.hashes(batch)[0]) == 2436108043


# ---------------------------------------------------------------- filterMatch
@pytest.fixture(scope="module")
def demo() -> tuple[PacketBatch, list[object]]:
    batch, _ = read_all(PCAPS / "demo.pcap")
    with open(PCAPS / "demo.pcap", "rb") as fh:
        frames = [dpkt.ethernet.Ethernet(buf) for _, buf in dpkt.pcap.Reader(fh)]
    return batch, [f.data for f in frames]


def _match(ie: str, value: int | bytes) -> model.FilterMatch:
    from probe.ie import by_name

    return model.FilterMatch(name="m", ie_id=by_name(ie).id, ie_name=ie,  # type: ignore
                             value=value)


@pytest.mark.parametrize(("ie", "value", "want"), [
    ("protocolIdentifier", 17, lambda ip: ip.p == 17 if isinstance(ip, dpkt.ip.IP)
     else ip.nxt == 17),
    ("sourceIPv4Address", 0xC000020A, lambda ip: isinstance(ip, dpkt.ip.IP)
     and ip.src == bytes([192, 0, 2, 10])),
    ("destinationTransportPort", 443, lambda ip: isinstance(ip.data, dpkt.tcp.TCP)
     and ip.data.dport == 443),
    ("ipVersion", 6, lambda ip: isinstance(ip, dpkt.ip6.IP6)),
    ("sourceIPv4Address", 0, lambda ip: False),  # IPv6 packets have no IPv4 address, not 0
    ("icmpTypeIPv4", 8, lambda ip: isinstance(ip, dpkt.ip.IP) and ip.p == 1
     and ip.data.type == 8),
])
def test_filter_match_selects_the_packets_dpkt_finds(demo, ie, value, want) -> None:
    batch, ips = demo
    mask = select(_match(ie, value), batch, size=7)
    expected = np.array([bool(want(ip)) for ip in ips])
    assert mask.tolist() == expected.tolist()
    assert (ie == "sourceIPv4Address" and value == 0) or expected.any()


def test_filter_match_ipv6_address(demo) -> None:
    batch, ips = demo
    v6 = [ip for ip in ips if isinstance(ip, dpkt.ip6.IP6)]
    target = v6[0].src
    mask = select(_match("sourceIPv6Address", target), batch)
    assert mask.sum() == sum(ip.src == target for ip in v6) > 0


# ---------------------------------------------------------------- filterHash: trajectory sampling
def _next_hop(src: Path, dst: Path) -> int:
    """What the same packets look like one router further on: TTL / hop limit one less, a new
    IPv4 checksum, other MAC addresses and another VLAN id. Returns the packets rewritten."""
    data = bytearray(src.read_bytes())
    at, n = 24, 0
    while at < len(data):
        caplen = struct.unpack_from("<I", data, at + 8)[0]
        frame = at + 16
        data[frame:frame + 12] = bytes(range(12))  # new destination and source MACs
        l3 = frame + 14
        if data[frame + 12:frame + 14] == b"\x81\x00":
            data[frame + 14:frame + 16] = (int.from_bytes(data[frame + 14:frame + 16], "big")
                                           ^ 0x0ABC).to_bytes(2, "big")
            l3 += 4
        if data[l3] >> 4 == 4:
            data[l3 + 8] -= 1
            data[l3 + 10] ^= 0x5A  # whatever the checksum becomes
        else:
            data[l3 + 7] -= 1
        at = frame + caplen
        n += 1
    dst.write_bytes(bytes(data))
    return n


@pytest.fixture(scope="module")
def hops(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("hops")
    tracegen.generate(d / "a.pcap", 20_000, seed=9, duration_s=120)
    assert _next_hop(d / "a.pcap", d / "b.pcap") == 20_000
    return d / "a.pcap", d / "b.pcap"


def _config(trace: Path, selector: dict[str, object]) -> model.Config:
    doc = sample("sampling-hash.json")
    op = doc["observationPoint"][0]
    op.pop("ifName")
    op["offlineFile"] = str(trace)
    doc["selectionProcess"][0]["selector"] = [selector]
    return load_data(doc)


def _records(config: model.Config, batch_size: int) -> list[tuple]:
    pipe = Pipeline(config, exporters=False, batch_size=batch_size)
    sink = RecordingSink()
    pipe.attach(sink)
    pipe.run(handle_signals=False)
    return record_set(sink.records)


@pytest.mark.parametrize("function", ["BOB", "CRC", "IPSX"])
def test_probes_configured_alike_select_the_same_packets_at_two_hops(hops, function) -> None:
    first, second = hops
    cfg = hash_cfg(function, ranges=(model.HashRange(name="r", min=0,
                                                     max=model.HASH_OUTPUT_MAX[function] // 8),),
                   **({} if function == "IPSX" else {"initializer_value": 77}))
    a, _ = read_all(first, batch_size=1000)
    b, _ = read_all(second)
    assert (a.ttl != b.ttl).all() and (a.src_mac != b.src_mac).all()  # the hop changed them
    mask_a, mask_b = select(cfg, a, size=1000), select(cfg, b)
    assert mask_a.tolist() == mask_b.tolist()
    assert 0.08 < mask_a.mean() < 0.17  # about an eighth, IPSX of the IPv4 packets only
    other = select(hash_cfg(function, ranges=(model.HashRange(name="r", min=1 << 28,
                                                              max=(1 << 28) + cfg.ranges[0].max),)
                            if function != "IPSX" else cfg.ranges), a)
    if function != "IPSX":
        assert other.tolist() != mask_a.tolist()  # the test can tell selections apart


def test_two_probes_export_the_same_flows(hops) -> None:
    """Two probes with the sample's filterHash config, one router apart and with different
    batch sizes, meter exactly the same flows (per-flow packet and octet counts)."""
    selector = sample("sampling-hash.json")["selectionProcess"][0]["selector"][0]
    up = _records(_config(hops[0], selector), 4096)
    down = _records(_config(hops[1], selector), 65536)
    assert up == down
    everything = _records(_config(hops[0], {"name": "all", "selectAll": [None]}), 65536)
    assert 0 < len(up) < len(everything)


def test_initializer_value_changes_the_selection(hops) -> None:
    a, _ = read_all(hops[0])
    one = select(hash_cfg(initializer_value=1), a)
    two = select(hash_cfg(initializer_value=2), a)
    assert one.tolist() != two.tolist()
    assert abs(one.mean() - two.mean()) < 0.02


def test_ipsx_does_not_select_ipv6(hops) -> None:
    a, _ = read_all(hops[0])
    everything = hash_cfg("IPSX", ranges=(model.HashRange(name="all", min=0, max=65535),))
    assert select(everything, a).tolist() == (a.ip_version == 4).tolist()


def test_an_observation_point_decodes_what_its_filters_read(hops) -> None:
    """The hash input is decoded only for a config that hashes, and the selection made from
    the pruned decode is the one made from a full decode."""
    selector = sample("sampling-hash.json")["selectionProcess"][0]["selector"][0]
    config = _config(hops[0], selector)
    (op,) = config.observation_points
    wanted = columns_for_point(op)
    assert {"ip_word1", "payload_head", "payload_head_len", "src_addr", "dst_addr"} <= wanted
    plain = _config(hops[0], {"name": "all", "selectAll": [None]}).observation_points[0]
    assert not {"ip_word1", "payload_head", "payload_head_len"} & columns_for_point(plain)
    (sel,) = op.selection_processes[0].selectors
    with open_offline(hops[0]) as src:
        src.columns = wanted
        pruned = PacketBatch.concat(list(src.batches(4096)))
    full, _ = read_all(hops[0])
    assert len(wanted) < len(COLUMNS)
    assert select(sel, pruned).tolist() == select(sel, full).tolist()


@pytest.mark.slow
def test_selected_fraction_is_the_configured_share_on_a_million_packets(tmp_path) -> None:
    """RFC 5475 §6.2.2.1 (ii): the attained selection fraction comes close to the configured
    one. Acceptance: within 2 % of the share, for each function and for two ranges at once."""
    trace = tmp_path / "1m.pcap"
    tracegen.generate(trace, 1_000_000, seed=1)
    cases = {
        "BOB 1/16": hash_cfg(ranges=SIXTEENTH, initializer_value=2718281828),
        "BOB 3/8 in two ranges": hash_cfg(initializer_value=99, ranges=(
            model.HashRange(name="a", min=0, max=2**30 - 1),
            model.HashRange(name="b", min=2**31, max=2**31 + 2**29 - 1))),
        "CRC 1/16": hash_cfg("CRC", ranges=SIXTEENTH),
        "IPSX 1/16": hash_cfg("IPSX", ranges=(model.HashRange(name="r", min=0, max=4095),)),
    }
    selectors = {k: FilterHashSelector(c) for k, c in cases.items()}
    ipv4 = 0
    with open_offline(trace) as src:
        for batch in src.batches(65536):
            ipv4 += int((batch.ip_version == 4).sum())
            for sel in selectors.values():
                sel.select(batch)
    for name, sel in selectors.items():
        assert sel.packets_observed == 1_000_000
        selected = sel.packets_observed - sel.packets_dropped
        base = ipv4 if sel.cfg.hash_function == "IPSX" else sel.packets_observed
        fraction = selected / base
        assert abs(fraction / sel.cfg.share - 1) < 0.02, (name, fraction, sel.cfg.share)


def test_digest_output_hands_on_the_hash_of_each_packet_selected(demo) -> None:
    """digestOutput (RFC 5475 §6.2.5): the selection process hands on, for each packet it
    returns, the hash its filterHash computed: after a selector before it thinned the batch,
    and with a selector after it thinning it again."""
    from probe.selection.process import SelectionProcess

    batch, _ = demo
    every_other = model.SampCountBased(name="c", packet_interval=1, packet_space=1)
    digest = hash_cfg(digest_output=True, ranges=(model.HashRange(name="r", min=0,
                                                                  max=2**31 - 1),))
    tcp = model.FilterMatch(name="tcp", ie_id=4, ie_name="protocolIdentifier", value=6)
    sp = SelectionProcess(model.SelectionProcess(name="s", selectors=(every_other, digest, tcp)))
    out = sp.select(batch)
    assert sp.digests is not None and sp.digests.shape == (len(out),) and len(out) > 5
    assert (out.proto == 6).all() and (sp.digests <= 2**31 - 1).all()
    assert sp.digests.tolist() == FilterHashSelector(digest).hashes(out).tolist()
    plain = SelectionProcess(model.SelectionProcess(name="p", selectors=(every_other,)))
    plain.select(batch)
    assert plain.digests is None  # nothing asked for a digest
