"""NetFlow v9 (RFC 3954) decoding from hand-made packets."""

from __future__ import annotations

import struct

from probe.collect import Decoder
from tests.collect.wire import ipv4, v9_options_template, v9_packet, v9_template

EXP = "192.0.2.9"
FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4), (22, 4), (21, 4), (6, 1),
          (48, 1)]


def flowset(fs_id: int, body: bytes) -> bytes:
    pad = (-len(body)) % 4
    return struct.pack(">HH", fs_id, 4 + len(body) + pad) + body + b"\x00" * pad


def rec(src: str, pkts: int, octets: int, first: int, last: int, sampler: int = 0) -> bytes:
    return struct.pack(">IIHHBIIIIBB", ipv4(src), ipv4("10.9.9.9"), 4000, 443, 6, pkts, octets,
                       first, last, 0x1B, sampler)


def test_template_and_data_times_from_sysuptime() -> None:
    d = Decoder()
    pkt = v9_packet([flowset(0, v9_template(260, FIELDS)),
                     flowset(260, rec("10.1.1.1", 5, 700, 90_000, 99_500))],
                    seq=3, source_id=7, uptime_ms=100_000, unix_secs=1_700_000_000)
    (r,) = d.decode(pkt, EXP)
    f = r.flow
    assert f["type"] == "NETFLOW_V9" and f["sequence_num"] == 3
    assert f["observation_domain_id"] == 7
    assert (f["src_addr"], f["dst_addr"], f["src_port"], f["dst_port"], f["proto"]) == \
        ("10.1.1.1", "10.9.9.9", 4000, 443, 6)
    assert (f["packets"], f["bytes"], f["tcp_flags"]) == (5, 700, 0x1B)
    # export at 1_700_000_000 s with uptime 100 s: first (90 s) was 10 s before export.
    assert f["time_flow_start_ns"] == 1_699_999_990_000_000_000
    assert f["time_flow_end_ns"] == 1_699_999_999_500_000_000


def test_options_sampling_interval_and_sampler_table() -> None:
    d = Decoder()
    # System-scope options record: samplingInterval (34) 64, samplingAlgorithm (35) 2.
    opts = flowset(1, v9_options_template(300, [(1, 4)], [(34, 4), (35, 1)]))
    opt_data = flowset(300, struct.pack(">IIB", 0, 64, 2))
    # Sampler table: samplerId (48) 3 -> samplerRandomInterval (50) 1000, samplerMode (49).
    stab = flowset(1, v9_options_template(301, [(1, 4)], [(48, 1), (49, 1), (50, 4)]))
    stab_data = flowset(301, struct.pack(">IBBI", 0, 3, 2, 1000))
    recs = d.decode(v9_packet([opts, opt_data, stab, stab_data,
                               flowset(0, v9_template(260, FIELDS)),
                               flowset(260, rec("10.1.1.1", 1, 1, 0, 0, sampler=0)
                                       + rec("10.1.1.2", 1, 1, 0, 0, sampler=3))]), EXP)
    assert [r.flow["sampling_rate"] for r in recs] == [64, 1000]
    assert d.stats.options_records == 2


def test_held_until_template_and_packet_sequence_gaps() -> None:
    d = Decoder()
    data = flowset(260, rec("10.1.1.1", 1, 1, 0, 0))
    assert d.decode(v9_packet([data], seq=10), EXP) == []
    recs = d.decode(v9_packet([flowset(0, v9_template(260, FIELDS))], seq=11), EXP)
    assert len(recs) == 1 and d.stats.held_decoded == 1
    d.decode(v9_packet([data], seq=15), EXP)  # 12, 13, 14 lost
    assert d.stats.lost_packets == 3 and d.stats.lost_records == 0


def test_malformed_v9() -> None:
    def reasons(pkt: bytes) -> dict[str, int]:
        d = Decoder()
        d.decode(pkt, EXP)
        return dict(d.stats.malformed)

    assert reasons(v9_packet([])[:19]) == {"short_header": 1}
    assert reasons(v9_packet([struct.pack(">HH", 260, 3)])) == {"set_too_short": 1}
    assert reasons(v9_packet([struct.pack(">HH", 260, 80)])) == {"set_overrun": 1}
    assert reasons(v9_packet([flowset(0, struct.pack(">HH", 260, 0) + b"\x01")])) == \
        {"template_bad_field_count": 1}
    assert reasons(v9_packet([flowset(0, struct.pack(">HH", 260, 9) + b"\x00" * 8)])) == \
        {"template_overrun": 1}
    assert reasons(v9_packet([flowset(1, struct.pack(">HHH", 300, 3, 4) + b"\x00" * 8)])) == \
        {"template_bad_field_count": 1}
    assert reasons(v9_packet([flowset(0, v9_template(12, FIELDS))])) == {"bad_template_id": 1}
    assert reasons(v9_packet([flowset(5, b"")])) == {"bad_set_id": 1}
