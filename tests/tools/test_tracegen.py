"""The benchmark trace generator: deterministic, well-formed, and honest about what it wrote.

The benchmark trusts the generator's per-5-tuple totals as ground truth, so these tests decode
its files with an independent parser (dpkt) and compare."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import dpkt
import numpy as np
import pytest

from tools import tracegen
from tools.tracegen import Mix

Key = tuple[int, bytes, bytes, int, int]


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("trace") / "t.pcap"
    return path, tracegen.generate(path, 20_000, seed=3, totals=True)


def decode(path: Path) -> list[dict]:
    """Every packet of the file as dpkt sees it, plus the 5-tuple a flow meter would key on."""
    out = []
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.snaplen == 128
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        for ts, buf in reader:
            eth = dpkt.ethernet.Ethernet(buf)
            tagged = bool(getattr(eth, "vlan_tags", None))
            assert tagged == (buf[12:14] == b"\x81\x00")
            link = 18 if tagged else 14
            ip = eth.data
            p: dict = {"ts": ts, "caplen": len(buf), "vlan": tagged, "link": link}
            if isinstance(ip, dpkt.ip.IP):
                assert ip.v == 4 and ip.hl == 5
                p.update(version=4, proto=ip.p, src=ip.src, dst=ip.dst, ip_len=ip.len,
                         first=ip.offset == 0, frag=bool(ip.mf or ip.offset))
                raw = bytes(buf[link + 20:])
            else:
                assert isinstance(ip, dpkt.ip6.IP6), type(ip)
                p.update(version=6, proto=ip.nxt, src=ip.src, dst=ip.dst, ip_len=40 + ip.plen,
                         first=True, frag=False)
                raw = bytes(buf[link + 40:])
            p["l4"] = ip.data
            sport = dport = 0
            if p["proto"] in (6, 17) and p["first"]:
                sport, dport = struct.unpack("!HH", raw[:4])
            elif p["proto"] in (1, 58):
                dport = raw[0] << 8 | raw[1]
            p["key"] = (p["proto"], bytes(p["src"]), bytes(p["dst"]), sport, dport)
            p["tcp_flags"] = raw[13] if p["proto"] == 6 and p["first"] else 0
            out.append(p)
    return out


@pytest.fixture(scope="module")
def packets(trace: tuple[Path, dict]) -> list[dict]:
    return decode(trace[0])


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"
    tracegen.generate(a, 3000, seed=11)
    tracegen.generate(b, 3000, seed=11, chunk=1000)  # chunking must not change the output
    tracegen.generate(c, 3000, seed=12)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_every_packet_decodes_with_consistent_lengths(trace, packets) -> None:
    path, summary = trace
    assert len(packets) == summary["packets"] == 20_000
    with open(path, "rb") as f:
        lengths = list(_records(f))
    for caplen, orig, data in lengths:
        assert caplen == len(data) == min(orig, 128)
        assert orig >= 60  # padded to the Ethernet minimum
    for p, (_, orig, _) in zip(packets, lengths, strict=True):
        assert orig == max(p["link"] + p["ip_len"], 60)
        assert p["ip_len"] <= 1500
        if p["first"] and not p["frag"]:
            want = {6: dpkt.tcp.TCP, 17: dpkt.udp.UDP, 1: dpkt.icmp.ICMP, 58: dpkt.icmp6.ICMP6,
                    47: dpkt.gre.GRE}[p["proto"]]
            assert isinstance(p["l4"], want), (p["proto"], type(p["l4"]))
        whole = p["caplen"] == p["link"] + p["ip_len"]
        if p["proto"] == 17 and p["first"] and not p["frag"] and whole:
            assert p["l4"].ulen == p["ip_len"] - (20 if p["version"] == 4 else 40)


def _records(f):
    f.read(24)
    while hdr := f.read(16):
        _, _, caplen, orig = struct.unpack("<IIII", hdr)
        yield caplen, orig, f.read(caplen)


def test_generator_totals_match_what_dpkt_decodes(trace, packets) -> None:
    _check_totals(trace[1], packets)


def _check_totals(summary: dict, packets: list[dict]) -> None:
    got: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    for p in packets:
        t = got[p["key"]]
        t[0] += 1
        t[1] += p["ip_len"]
        t[2] += max(p["link"] + p["ip_len"], 60) - p["link"]
    want = {}
    for r in summary["totals"]:
        n = 4 if r["ip_version"] == 4 else 16
        key = (int(r["proto"]), bytes(r["src"][:n]), bytes(r["dst"][:n]), int(r["sport"]),
               int(r["dport"]))
        want[key] = [int(r["packets"]), int(r["ip_octets"]), int(r["l2_octets"])]
    assert dict(got) == want
    assert summary["flows"] == len(want)


def test_mix_is_roughly_as_configured(trace, packets) -> None:
    _, s = trace
    mix = Mix()
    n = len(packets)
    share = lambda cond: sum(1 for p in packets if cond(p)) / n  # noqa: E731
    # Conversation shares are drawn per conversation and sizes are heavy-tailed, so packet
    # shares only land near the configured values.
    assert abs(share(lambda p: p["proto"] == 6) - mix.tcp) < 0.2
    assert abs(share(lambda p: p["version"] == 6) - mix.ipv6) < 0.15
    assert 0.02 < share(lambda p: p["vlan"]) < 0.3
    assert share(lambda p: p["proto"] == 17) > 0.05
    for proto in (1, 58, 47):
        assert share(lambda p, proto=proto: p["proto"] == proto) > 0.001, proto
    assert s["share"]["tcp"] == pytest.approx(share(lambda p: p["proto"] == 6), abs=1e-3)
    assert 15 <= s["packets_per_flow"] <= 25


def test_trace_has_the_cases_a_meter_must_handle(trace, packets) -> None:
    _, s = trace
    flags = [p["tcp_flags"] for p in packets if p["proto"] == 6]
    assert any(f == 0x02 for f in flags) and any(f == 0x12 for f in flags)  # SYN, SYN-ACK
    assert any(f & 0x01 for f in flags) and any(f & 0x04 for f in flags)  # FIN, RST
    first = sum(1 for p in packets if p["frag"] and p["first"])
    later = sum(1 for p in packets if p["frag"] and not p["first"])
    assert first == later == s["fragments_first"] > 0
    assert sum(1 for p in packets if p["caplen"] == 128 and p["link"] + p["ip_len"] > 128) \
        == s["truncated"] > 0
    assert sum(1 for p in packets if p["link"] + p["ip_len"] < 60) == s["padded"] > 0
    icmp = {(p["proto"], p["key"][4] >> 8) for p in packets if p["proto"] in (1, 58)}
    assert {(1, 8), (1, 0), (58, 128), (58, 129)} <= icmp


def test_timeouts_fire_and_flows_interleave(packets) -> None:
    ts = [p["ts"] for p in packets]
    assert ts == sorted(ts)
    assert ts[-1] - ts[0] > 1800
    by_key: dict[Key, list[float]] = defaultdict(list)
    for p in packets:
        by_key[p["key"]].append(p["ts"])
    spans = [v[-1] - v[0] for v in by_key.values()]
    gaps = [max(np.diff(v)) for v in by_key.values() if len(v) > 1]
    assert max(spans) > 1800  # an active timeout of 1800 s fires
    assert sum(1 for g in gaps if g > 300) >= 5  # idle timeouts of 300 s fire mid-flow
    # Many flows are active at once: the next 1000 packets touch many 5-tuples.
    assert len({p["key"] for p in packets[5000:6000]}) > 50


def test_max_active_flows_is_bounded_by_flows(trace) -> None:
    _, s = trace
    assert 0 < s["max_active_flows"] <= s["flows"]


def test_tcp_conversations_start_with_a_handshake(packets) -> None:
    seen: dict[tuple, int] = {}
    for p in packets:
        if p["proto"] != 6:
            continue
        conv = tuple(sorted([(p["src"], p["key"][3]), (p["dst"], p["key"][4])]))
        if conv not in seen:
            seen[conv] = p["tcp_flags"]
    assert seen and all(f == 0x02 for f in seen.values())


def test_cli_writes_trace_and_totals(tmp_path: Path) -> None:
    out, npz = tmp_path / "x.pcap", tmp_path / "x.npz"
    assert tracegen.main([str(out), "--packets", "500", "--seed", "2", "--totals", str(npz)]) == 0
    totals = np.load(npz)["totals"]
    assert int(totals["packets"].sum()) == 500
    assert out.stat().st_size > 24
    assert tracegen.main([str(out), "--packets", "0"]) == 2


def test_mix_overrides_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "v6.pcap"
    assert tracegen.main([str(out), "--packets", "2000", "--mix", "ipv6=1,vlan=0,gre=0"]) == 0
    pkts = decode(out)
    assert all(p["version"] == 6 and not p["vlan"] and p["proto"] != 47 for p in pkts)
    assert {p["proto"] for p in pkts} >= {6, 17}
    for bad in ("ipv7=1", "vlan=2", "tcp=x", "tcp=0,udp=0,icmp=0,gre=0"):
        assert tracegen.main([str(out), "--packets", "10", "--mix", bad]) == 2, bad


@pytest.mark.parametrize("pattern", ["scan", "synflood", "concurrent", "mixed"])
def test_hostile_patterns_totals_match_what_dpkt_decodes(tmp_path: Path, pattern: str) -> None:
    path = tmp_path / f"{pattern}.pcap"
    summary = tracegen.generate(path, 6000, seed=4, pattern=pattern, totals=True, duration_s=60)
    pkts = decode(path)
    assert len(pkts) == 6000 and summary["pattern"] == pattern
    _check_totals(summary, pkts)
    again = tmp_path / "again.pcap"
    tracegen.generate(again, 6000, seed=4, pattern=pattern, duration_s=60)
    assert again.read_bytes() == path.read_bytes()


def test_hostile_patterns_are_what_they_say(tmp_path: Path) -> None:
    """A scan is one source to many destination hosts and ports; a SYN flood many (spoofed)
    sources to one server port; both one or two packets a flow and a new flow nearly every
    packet. ``concurrent`` keeps packets / 4 one-way flows alive at once."""
    path = tmp_path / "t.pcap"
    scan = tracegen.generate(path, 4000, seed=5, pattern="scan", totals=True, duration_s=60)
    pkts = decode(path)
    probes = [p for p in pkts if p["tcp_flags"] == 0x02]
    assert len({p["src"] for p in probes}) == 1
    assert len({(p["dst"], p["key"][4]) for p in probes}) > 0.95 * len(probes)
    assert scan["flows"] > 0.95 * 4000
    flood = tracegen.generate(path, 4000, seed=5, pattern="synflood", totals=True,
                              duration_s=60)
    pkts = decode(path)
    syns = [p for p in pkts if p["tcp_flags"] == 0x02]
    assert len(syns) > 0.85 * 4000 and {(p["dst"], p["key"][4]) for p in syns} == {
        (bytes([172, 16, 0, 80]), 80)}
    assert len({p["src"] for p in syns}) > 0.99 * len(syns)
    assert flood["flows"] == 4000  # each packet its own flow (answers go the other way)
    conc = tracegen.generate(path, 4000, seed=5, pattern="concurrent", totals=True,
                             duration_s=60)
    assert conc["flows"] == 1000 and conc["max_active_flows"] > 900
    pkts = decode(path)
    assert {p["proto"] for p in pkts} == {17}
    assert not {p["src"] for p in pkts} & {p["dst"] for p in pkts}  # one-way streams
