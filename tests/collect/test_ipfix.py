"""IPFIX decoding (RFC 7011) from hand-made messages: every feature and every refusal."""

from __future__ import annotations

import struct

from probe.collect import Decoder, Limits
from tests.collect.wire import ipfix_message, ipfix_set, ipfix_template, ipv4, varlen

EXP = "192.0.2.1"
V4_FIELDS = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 8), (1, 8), (152, 8), (153, 8),
             (6, 2), (136, 1)]


def v4_record(src: str, dst: str, proto: int, sport: int, dport: int, pkts: int, octets: int,
              start_ms: int, end_ms: int, flags: int = 0x12, reason: int = 3) -> bytes:
    return struct.pack(">IIBHHQQQQHB", ipv4(src), ipv4(dst), proto, sport, dport, pkts, octets,
                       start_ms, end_ms, flags, reason)


def test_template_then_data_gives_goflow2_named_flows() -> None:
    d = Decoder()
    tmpl = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    data = ipfix_set(256, v4_record("10.0.0.1", "10.0.0.2", 6, 1234, 80, 10, 1500,
                                    1_700_000_000_123, 1_700_000_001_456)
                     + v4_record("10.0.0.3", "10.0.0.4", 17, 53, 5353, 1, 80, 1_700_000_002_000,
                                 1_700_000_002_000, 0, 1))
    recs = d.decode(ipfix_message([tmpl, data], seq=0, domain=9), EXP, received_ns=5)
    assert len(recs) == 2
    f = recs[0].flow
    assert f["type"] == "IPFIX" and f["time_received_ns"] == 5 and f["sequence_num"] == 0
    assert f["sampler_address"] == EXP and f["observation_domain_id"] == 9
    assert (f["src_addr"], f["dst_addr"], f["proto"], f["src_port"], f["dst_port"]) == \
        ("10.0.0.1", "10.0.0.2", 6, 1234, 80)
    assert (f["packets"], f["bytes"], f["tcp_flags"], f["etype"]) == (10, 1500, 0x12, 0x800)
    assert f["time_flow_start_ns"] == 1_700_000_000_123_000_000
    assert f["time_flow_end_ns"] == 1_700_000_001_456_000_000
    assert f["flowEndReason"] == 3
    assert recs[1].raw["sourceIPv4Address"] == ipv4("10.0.0.3")
    assert d.stats.records == 2 and d.stats.templates == 1 and not d.stats.malformed


def test_ipv6_mac_vlan_icmp_flow_label_fragment_names() -> None:
    d = Decoder()
    fields = [(27, 16), (28, 16), (4, 1), (139, 2), (56, 6), (80, 6), (58, 2), (31, 4), (54, 4),
              (5, 1), (52, 1), (154, 8), (155, 8)]
    src = bytes.fromhex("20010db8000000000000000000000001")
    dst = bytes.fromhex("20010db8000000000000000000000002")
    ntp_us = struct.pack(">II", 1_700_000_000 + 2_208_988_800, 1 << 31)  # .5 s
    ntp_us2 = struct.pack(">II", 1_700_000_001 + 2_208_988_800, (250_000 << 32) // 1_000_000)
    rec = (src + dst + bytes([58]) + struct.pack(">H", 0x8000) + bytes.fromhex("001122334455")
           + bytes.fromhex("66778899aabb") + struct.pack(">HII", 42, 0xABCDE, 777) + bytes([0xB8])
           + bytes([63]) + ntp_us + ntp_us2)
    msg = ipfix_message([ipfix_set(2, ipfix_template(300, fields)), ipfix_set(300, rec)])
    (r,) = d.decode(msg, EXP)
    f = r.flow
    assert f["src_addr"] == "2001:db8::1" and f["dst_addr"] == "2001:db8::2"
    assert f["etype"] == 0x86DD and f["proto"] == 58
    assert (f["icmp_type"], f["icmp_code"]) == (128, 0)
    assert f["src_mac"] == "00:11:22:33:44:55" and f["dst_mac"] == "66:77:88:99:aa:bb"
    assert (f["vlan_id"], f["ipv6_flow_label"], f["fragment_id"], f["ip_tos"]) == \
        (42, 0xABCDE, 777, 0xB8)
    assert f["minimumTTL"] == 63
    assert f["time_flow_start_ns"] == 1_700_000_000_500_000_000
    assert r.raw["flowEndMicroseconds"] == 1_700_000_001_250_000
    assert f["time_flow_end_ns"] == 1_700_000_001_250_000_000


def test_nanoseconds_and_seconds_times() -> None:
    d = Decoder()
    frac = (123_456_789 << 32) // 1_000_000_000 + 1
    rec = struct.pack(">II", 1_700_000_000 + 2_208_988_800, frac) + struct.pack(">I", 1_700_000_009)
    msg = ipfix_message([ipfix_set(2, ipfix_template(256, [(156, 8), (151, 4)])),
                         ipfix_set(256, rec)])
    (r,) = d.decode(msg, EXP)
    assert r.flow["time_flow_start_ns"] == 1_700_000_000_123_456_789
    assert r.flow["time_flow_end_ns"] == 1_700_000_009_000_000_000


def test_reduced_size_signed_float_boolean_string() -> None:
    d = Decoder()
    # octetDeltaCount in 3 bytes, packetDeltaCount in 1, a signed32 (mibObjectValueInteger 434)
    # in 2 bytes, float64 (samplingProbability 311) in 4, boolean (dataRecordsReliability 276),
    # string (interfaceName 82, variable).
    fields = [(1, 3), (2, 1), (434, 2), (311, 4), (276, 1), (82, 65535)]
    rec = (b"\x01\x00\x00" + b"\x07" + struct.pack(">h", -5) + struct.pack(">f", 0.25) + b"\x02"
           + varlen("eth0 ü".encode()))
    msg = ipfix_message([ipfix_set(2, ipfix_template(256, fields)), ipfix_set(256, rec)])
    (r,) = d.decode(msg, EXP)
    assert r.flow["bytes"] == 65536 and r.flow["packets"] == 7
    assert r.raw["mibObjectValueInteger"] == -5
    assert r.raw["samplingProbability"] == 0.25
    assert r.raw["dataRecordsReliability"] is False
    assert r.flow["interfaceName"] == "eth0 ü"


def test_variable_length_fields_long_form_and_padding() -> None:
    d = Decoder()
    fields = [(8, 4), (82, 65535), (83, 65535)]
    long = b"d" * 300
    rec1 = struct.pack(">I", ipv4("1.2.3.4")) + varlen(b"a") + varlen(long)
    rec2 = struct.pack(">I", ipv4("5.6.7.8")) + varlen(b"") + varlen(b"zz")
    msg = ipfix_message([ipfix_set(2, ipfix_template(256, fields)),
                         ipfix_set(256, rec1 + rec2 + b"\x00\x00")])  # 2 bytes padding
    recs = d.decode(msg, EXP)
    assert [r.flow["src_addr"] for r in recs] == ["1.2.3.4", "5.6.7.8"]
    assert recs[0].flow["interfaceDescription"] == "d" * 300
    assert recs[1].flow["interfaceName"] == ""
    assert not d.stats.malformed


def test_enterprise_and_unknown_ies_named_by_pen_and_id() -> None:
    d = Decoder()
    fields = [(8, 4), (137, 4, 2636), (1000, 2, 29305), (999, 3), (998, 12)]
    rec = struct.pack(">IIH", ipv4("9.9.9.9"), 0xDEADBEEF, 7) + b"\x00\x01\x02" + b"\xaa" * 12
    msg = ipfix_message([ipfix_set(2, ipfix_template(256, fields)), ipfix_set(256, rec)])
    (r,) = d.decode(msg, EXP)
    assert r.flow["2636.137"] == 0xDEADBEEF
    assert r.flow["29305.1000"] == 7
    assert r.flow["ie999"] == 0x000102
    assert r.flow["ie998"] == "aa" * 12  # longer than 8 bytes: hex


def test_options_template_sampling_applies_to_flows() -> None:
    d = Decoder()
    # RFC 5476: selectorId scope, samplingPacketInterval 1, samplingPacketSpace 99 -> 1 in 100.
    opt = ipfix_set(3, ipfix_template(257, [(302, 8), (305, 4), (306, 4)], scope=1))
    opt_data = ipfix_set(257, struct.pack(">QII", 5, 1, 99))
    tmpl = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    data = ipfix_set(256, v4_record("10.0.0.1", "10.0.0.2", 6, 1, 2, 3, 4, 0, 0))
    recs = d.decode(ipfix_message([opt, opt_data, tmpl, data], seq=0), EXP)
    assert len(recs) == 1 and recs[0].flow["sampling_rate"] == 100
    assert d.stats.options_records == 1


def test_sysuptime_times_use_system_init_time_from_options() -> None:
    d = Decoder()
    opt = ipfix_set(3, ipfix_template(257, [(149, 4), (160, 8)], scope=1))
    opt_data = ipfix_set(257, struct.pack(">IQ", 1, 1_700_000_000_000))
    tmpl = ipfix_set(2, ipfix_template(256, [(8, 4), (22, 4), (21, 4)]))
    data = ipfix_set(256, struct.pack(">III", 1, 1500, 2500))
    (r,) = d.decode(ipfix_message([opt, opt_data, tmpl, data]), EXP)
    assert r.flow["time_flow_start_ns"] == 1_700_000_001_500_000_000
    assert r.flow["time_flow_end_ns"] == 1_700_000_002_500_000_000


def test_data_before_template_is_held_then_decoded() -> None:
    d = Decoder()
    data = ipfix_set(256, v4_record("10.0.0.1", "10.0.0.2", 6, 1, 2, 3, 4, 0, 0))
    assert d.decode(ipfix_message([data], seq=0), EXP, now=0.0) == []
    assert d.stats.held == 1
    recs = d.decode(ipfix_message([ipfix_set(2, ipfix_template(256, V4_FIELDS))], seq=1), EXP,
                    now=1.0)
    assert len(recs) == 1 and recs[0].flow["packets"] == 3 and recs[0].flow["sequence_num"] == 0
    assert d.stats.held_decoded == 1 and d.table.held_count() == 0


def test_held_data_sets_expire_and_are_bounded() -> None:
    d = Decoder(Limits(max_held_per_session=3, held_max_age_s=10))
    data = ipfix_set(256, v4_record("10.0.0.1", "10.0.0.2", 6, 1, 2, 3, 4, 0, 0))
    for i in range(5):
        d.decode(ipfix_message([data], seq=i), EXP, now=float(i))
    assert d.table.held_count() == 3 and d.stats.malformed["held_dropped_limit"] == 2
    d.expire(now=100.0)
    assert d.table.held_count() == 0 and d.stats.malformed["held_expired"] == 3
    recs = d.decode(ipfix_message([ipfix_set(2, ipfix_template(256, V4_FIELDS))]), EXP, now=101.0)
    assert recs == []


def test_template_withdrawal_single_and_all() -> None:
    d = Decoder()
    t = ipfix_set(2, ipfix_template(256, V4_FIELDS) + ipfix_template(257, V4_FIELDS))
    rec = v4_record("10.0.0.1", "10.0.0.2", 6, 1, 2, 3, 4, 0, 0)
    d.decode(ipfix_message([t]), EXP)
    assert d.table.template_count() == 2
    d.decode(ipfix_message([ipfix_set(2, struct.pack(">HH", 256, 0))]), EXP)
    assert d.table.template_count() == 1
    assert d.decode(ipfix_message([ipfix_set(256, rec)]), EXP) == []  # held: withdrawn
    assert len(d.decode(ipfix_message([ipfix_set(257, rec)]), EXP)) == 1
    d.decode(ipfix_message([ipfix_set(2, struct.pack(">HH", 2, 0))]), EXP)  # withdraw all
    assert d.table.template_count() == 0 and d.stats.withdrawals == 2


def test_templates_are_scoped_per_exporter_session_and_domain() -> None:
    d = Decoder()
    t = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    rec = ipfix_set(256, v4_record("10.0.0.1", "10.0.0.2", 6, 1, 2, 3, 4, 0, 0))
    d.decode(ipfix_message([t], domain=1), EXP, ("udp", EXP, 1000))
    assert len(d.decode(ipfix_message([rec], domain=1), EXP, ("udp", EXP, 1000))) == 1
    assert d.decode(ipfix_message([rec], domain=2), EXP, ("udp", EXP, 1000)) == []
    assert d.decode(ipfix_message([rec], domain=1), EXP, ("udp", EXP, 1001)) == []
    assert d.decode(ipfix_message([rec], domain=1), "192.0.2.2") == []
    assert d.stats.held == 3


def test_sequence_gaps_counted_as_lost_records() -> None:
    d = Decoder()
    t = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    two = ipfix_set(256, v4_record("1.1.1.1", "2.2.2.2", 6, 1, 2, 3, 4, 0, 0) * 2)
    d.decode(ipfix_message([t, two], seq=0), EXP)
    d.decode(ipfix_message([two], seq=2), EXP)  # in order
    d.decode(ipfix_message([two], seq=9), EXP)  # 5 records lost
    d.decode(ipfix_message([two], seq=3), EXP)  # late
    assert d.stats.lost_records == 5 and d.stats.out_of_order == 1
    d.decode(ipfix_message([two], seq=11), EXP)
    assert d.stats.lost_records == 5


def test_sequence_wraps_modulo_2_32() -> None:
    d = Decoder()
    t = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    two = ipfix_set(256, v4_record("1.1.1.1", "2.2.2.2", 6, 1, 2, 3, 4, 0, 0) * 2)
    d.decode(ipfix_message([t, two], seq=0xFFFFFFFF), EXP)
    d.decode(ipfix_message([two], seq=1), EXP)
    assert d.stats.lost_records == 0 and d.stats.out_of_order == 0


def _reasons(msg: bytes) -> dict[str, int]:
    d = Decoder()
    assert d.decode(msg, EXP) == []
    return dict(d.stats.malformed)


def test_malformed_messages_counted_by_reason() -> None:
    good_t = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    assert _reasons(b"\x00\x0a\x00") == {"short_header": 1}
    assert _reasons(struct.pack(">HHIII", 11, 16, 0, 0, 0)) == {"bad_version": 1}
    assert _reasons(ipfix_message([good_t])[:-1]) == {"length_mismatch": 1}
    assert _reasons(ipfix_message([good_t]) + b"\x00") == {"length_mismatch": 1}
    assert _reasons(ipfix_message([struct.pack(">HH", 256, 2)])) == {"set_too_short": 1}
    assert _reasons(ipfix_message([struct.pack(">HH", 256, 40) + b"\x00" * 8])) == \
        {"set_overrun": 1}
    assert _reasons(ipfix_message([ipfix_set(2, struct.pack(">HH", 12, 1) + b"\x00" * 4)])) == \
        {"bad_template_id": 1}
    assert _reasons(ipfix_message([ipfix_set(2, struct.pack(">HH", 256, 5) + b"\x00" * 8)])) == \
        {"template_overrun": 1}
    assert _reasons(ipfix_message([ipfix_set(3, ipfix_template(256, [(8, 4)], scope=0))])) == \
        {"template_bad_scope_count": 1}
    assert _reasons(ipfix_message([ipfix_set(2, ipfix_template(256, [(8, 0)]))])) == \
        {"template_zero_length": 1}
    assert _reasons(ipfix_message([ipfix_set(7, b"")])) == {"bad_set_id": 1}
    bad_var = ipfix_message([ipfix_set(2, ipfix_template(256, [(82, 65535)])),
                             ipfix_set(256, b"\x09abc")])
    assert _reasons(bad_var) == {"field_length_overrun": 1}


def test_template_limits() -> None:
    d = Decoder(Limits(max_templates_per_session=2, max_fields_per_template=4))
    flood = b"".join(ipfix_template(256 + i, [(8, 4)]) for i in range(5))
    d.decode(ipfix_message([ipfix_set(2, flood)]), EXP)
    assert d.table.template_count() == 2 and d.stats.malformed["template_limit"] == 3
    d.decode(ipfix_message([ipfix_set(2, ipfix_template(256, [(8, 4)] * 5))]), EXP)
    assert d.stats.malformed["template_too_many_fields"] == 1


def test_session_lru_bound() -> None:
    d = Decoder(Limits(max_sessions=3))
    t = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    for port in range(10):
        d.decode(ipfix_message([t]), EXP, ("udp", EXP, port))
    assert len(d.table.sessions) == 3 and d.stats.sessions_evicted == 7
    assert d.table.template_fields == 3 * len(V4_FIELDS)


def test_options_withdraw_all_keeps_data_templates() -> None:
    d = Decoder()
    d.decode(ipfix_message([ipfix_set(2, ipfix_template(256, V4_FIELDS)),
                            ipfix_set(3, ipfix_template(257, [(149, 4), (160, 8)], scope=1))]),
             EXP)
    d.decode(ipfix_message([ipfix_set(3, struct.pack(">HH", 3, 0))]), EXP)
    assert [k[1] for k in d.table.sessions[EXP].templates] == [256]


def test_repeated_ie_keeps_every_value_and_delta_times() -> None:
    d = Decoder()
    fields = [(8, 4), (8, 4), (158, 4), (159, 4)]  # flowStart/EndDeltaMicroseconds
    rec = struct.pack(">IIII", ipv4("1.1.1.1"), ipv4("2.2.2.2"), 2_000_000, 500_000)
    (r,) = d.decode(ipfix_message([ipfix_set(2, ipfix_template(256, fields)),
                                   ipfix_set(256, rec)], export_secs=1_700_000_010), EXP)
    assert r.flow["src_addr"] == "1.1.1.1" and r.flow["sourceIPv4Address#2"] == "2.2.2.2"
    assert r.flow["time_flow_start_ns"] == 1_700_000_008_000_000_000
    assert r.flow["time_flow_end_ns"] == 1_700_000_009_500_000_000


def test_unchanged_template_refresh_is_not_recompiled_but_a_change_is() -> None:
    d = Decoder()
    t = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    d.decode(ipfix_message([t]), EXP)
    first = d.table.sessions[EXP].templates[(1, 256)]
    d.decode(ipfix_message([t]), EXP)
    assert d.table.sessions[EXP].templates[(1, 256)] is first and d.stats.templates == 2
    d.decode(ipfix_message([ipfix_set(2, ipfix_template(256, [(8, 4)]))]), EXP)
    (r,) = d.decode(ipfix_message([ipfix_set(256, struct.pack(">I", 7))]), EXP)
    assert r.raw == {"sourceIPv4Address": 7}
    assert d.table.template_fields == 1


def test_exporter_restart_resynchronises_sequence() -> None:
    d = Decoder()
    t = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    one = ipfix_set(256, v4_record("1.1.1.1", "2.2.2.2", 6, 1, 2, 3, 4, 0, 0))
    d.decode(ipfix_message([t, one], seq=5_000_000), EXP)
    d.decode(ipfix_message([t, one], seq=0), EXP)  # restarted: far behind
    d.decode(ipfix_message([one], seq=1), EXP)
    d.decode(ipfix_message([one], seq=2), EXP)
    assert d.stats.sequence_resets == 1
    assert d.stats.out_of_order == 0 and d.stats.lost_records == 0


def test_udp_templates_expire_without_refresh_tcp_ones_do_not() -> None:
    d = Decoder(Limits(template_lifetime_s=100))
    t = ipfix_set(2, ipfix_template(256, V4_FIELDS))
    one = ipfix_set(256, v4_record("1.1.1.1", "2.2.2.2", 6, 1, 2, 3, 4, 0, 0))
    for key in (("udp", EXP, 1), ("tcp", EXP, 1, 4739, 1)):
        d.decode(ipfix_message([t]), EXP, key, now=0.0)
        assert len(d.decode(ipfix_message([one]), EXP, key, now=90.0)) == 1
        d.decode(ipfix_message([t]), EXP, key, now=95.0)  # refresh
        assert len(d.decode(ipfix_message([one]), EXP, key, now=190.0)) == 1
    assert d.decode(ipfix_message([one]), EXP, ("udp", EXP, 1), now=300.0) == []
    assert len(d.decode(ipfix_message([one]), EXP, ("tcp", EXP, 1, 4739, 1), now=300.0)) == 1
    assert d.stats.malformed["template_expired"] == 1
