"""NetFlow v5 decoding from hand-made packets."""

from __future__ import annotations

from probe.collect import Decoder
from tests.collect.wire import ipv4, v5_packet

EXP = "192.0.2.5"


def _r(src: str, sport: int, pkts: int, octets: int, first: int, last: int) -> dict:
    return {"src": ipv4(src), "dst": ipv4("10.0.0.254"), "packets": pkts, "bytes": octets,
            "first": first, "last": last, "sport": sport, "dport": 80, "proto": 6,
            "flags": 0x18, "tos": 0x10}


def test_records_and_times() -> None:
    d = Decoder()
    pkt = v5_packet([_r("10.0.0.1", 1111, 4, 400, 95_000, 99_000),
                     _r("10.0.0.2", 2222, 1, 40, 99_999, 99_999)],
                    seq=100, uptime_ms=100_000, unix_secs=1_700_000_000, unix_nsecs=250_000_000,
                    sampling=(1 << 14) | 10)
    recs = d.decode(pkt, EXP)
    assert len(recs) == 2
    f = recs[0].flow
    assert f["type"] == "NETFLOW_V5" and f["sequence_num"] == 100 and f["sampling_rate"] == 10
    assert (f["src_addr"], f["dst_addr"], f["src_port"], f["dst_port"], f["proto"]) == \
        ("10.0.0.1", "10.0.0.254", 1111, 80, 6)
    assert (f["packets"], f["bytes"], f["tcp_flags"], f["ip_tos"], f["etype"]) == \
        (4, 400, 0x18, 0x10, 0x800)
    assert (f["src_net"], f["dst_net"], f["in_if"], f["out_if"]) == (24, 16, 1, 2)
    assert f["time_flow_start_ns"] == 1_699_999_995_250_000_000
    assert f["time_flow_end_ns"] == 1_699_999_999_250_000_000
    assert recs[0].raw["engineType"] == 1 and recs[0].raw["engineId"] == 2


def test_uptime_wrap() -> None:
    d = Decoder()
    (r,) = d.decode(v5_packet([_r("10.0.0.1", 1, 1, 1, 0xFFFFFF00, 0xFFFFFF00)],
                              uptime_ms=0x100, unix_secs=1_700_000_000), EXP)
    assert r.flow["time_flow_start_ns"] == (1_700_000_000_000 - 0x200) * 1_000_000


def test_flow_sequence_gaps() -> None:
    d = Decoder()
    recs = [_r("10.0.0.1", 1, 1, 1, 0, 0)] * 3
    d.decode(v5_packet(recs, seq=0), EXP)
    d.decode(v5_packet(recs, seq=3), EXP)
    d.decode(v5_packet(recs, seq=10), EXP)
    assert d.stats.lost_records == 4


def test_malformed_v5() -> None:
    d = Decoder()
    good = v5_packet([_r("10.0.0.1", 1, 1, 1, 0, 0)])
    d.decode(good[:20], EXP)
    d.decode(good[:-1], EXP)
    d.decode(good[:2] + b"\x00\x00" + good[4:], EXP)  # count 0
    d.decode(good[:2] + b"\x00\x1f" + good[4:], EXP)  # count 31
    assert d.stats.malformed == {"short_header": 1, "length_mismatch": 1, "bad_record_count": 2}
    assert d.stats.records == 0
