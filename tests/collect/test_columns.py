"""Column decode = record decode: every field of every record, for random Templates and values.

The oracle is the collector's former per-record path (``tests/collect/reference.py``: each
field converted by ``probe.collect.values``, then ``build_flow``), which the columnar path
(``probe.collect.columns`` / ``flows``) replaced. Random Templates mix every abstract data type,
reduced-size encodings, lengths a type cannot have, repeated and unknown IEs, enterprise IEs
and variable-length fields; options records set sampling per selector and the exporter's init
time. Both JSON renderings of a batch (the C one and ``json.dumps`` of its records) must be
byte for byte the same, and equal to the oracle's.
"""

from __future__ import annotations

import json
import os
import random
import struct

import numpy as np

from probe.collect import Decoder
from probe.collect.session import MessageContext
from probe.collect.templates import decode_records
from probe.collect.values import ipv6_text
from probe.wire import DomainState, Template, field_spec
from tests.collect import reference
from tests.collect.wire import ipfix_message, ipfix_set, ipfix_template, v5_packet, v9_packet

EXP = "192.0.2.7"
SEED = 20261206
# (IE id, natural length, a value maker); None: random octets of the field's length.
_MS = (946_684_800_000, 4_102_444_800_000)  # 2000..2100 in ms


def _ms(rng: random.Random, n: int) -> bytes:
    return rng.randrange(*_MS).to_bytes(n, "big") if n >= 6 else os.urandom(n)


def _ntp(rng: random.Random, n: int) -> bytes:
    if n != 8:
        return rng.randbytes(n)
    return (rng.randrange(3_155_673_600, 4_294_967_295) << 32 | rng.getrandbits(32)).to_bytes(8,
                                                                                        "big")


def _small(rng: random.Random, n: int) -> bytes:
    return rng.choice((0, 1, 4, 6, 10, 100)).to_bytes(n, "big") if n else b""


IES = [
    (1, 8, None), (2, 8, None), (4, 1, None), (5, 1, None), (6, 2, None), (7, 2, None),
    (11, 2, None), (8, 4, None), (12, 4, None), (10, 4, None), (27, 16, None), (28, 16, None),
    (31, 4, None), (32, 2, None), (139, 2, None), (56, 6, None), (80, 6, None), (58, 2, None),
    (60, 1, _small), (152, 8, _ms), (153, 8, _ms), (150, 4, None), (154, 8, _ntp),
    (157, 8, _ntp), (22, 4, None), (21, 4, None), (158, 4, None), (82, 8, None),
    (34, 4, _small), (302, 8, _small), (48, 1, _small), (305, 4, _small), (306, 4, _small),
    (136, 1, None), (52, 1, None), (5000, 4, None), (311, 8, None), (276, 1, None),
    (313, 12, None), (434, 4, None), (23, 8, None), (4, 1, None),
]


_TIMES = (150, 152, 153, 154, 157, 21, 22, 158)


def _template(rng: random.Random, variable: bool, enterprise: bool) -> list[tuple]:
    fields = []
    for _ in range(rng.randint(1, 14)):
        ie, n, make = rng.choice(IES)
        r = 1.0 if ie in _TIMES else rng.random()  # times beyond 2262 wrap in int64 ns
        if r < 0.12 and n > 1:
            n = rng.randint(1, n - 1)  # reduced size, or a length the type cannot have
        elif r < 0.16:
            n = rng.choice((3, 5, 7, 9, 0))
        if variable and rng.random() < 0.25 and ie not in _TIMES:
            n = 65535
        fields.append((ie, n, make))
    if enterprise:
        fields.append((77, 4, None, 29305))
    return fields


def _value(rng: random.Random, f: tuple) -> bytes:
    ie, n, make = f[:3]
    if n == 65535:
        # Numbers within 8 octets stay numbers (a template decides a field's kind, not a row).
        octets = ie in (82, 313, 27, 28, 5000, 311, 276)
        n = rng.choice((0, 1, 4, 8, 20, 300) if octets else (1, 2, 4, 8))
        b = make(rng, n) if make is not None else rng.randbytes(n)
        return (bytes([len(b)]) if len(b) < 255 else b"\xff" + struct.pack(">H", len(b))) + b
    if make is not None and n:
        return make(rng, n)
    b = rng.randbytes(n)
    if ie == 276 and n == 1 and rng.random() < 0.8:  # boolean: mostly 1 or 2
        b = bytes([rng.choice((1, 2))])
    if ie == 311 and n == 8 and rng.random() < 0.2:
        b = struct.pack(">d", float("nan"))
    if ie == 82 and rng.random() < 0.5:
        b = "eth0é".encode()[:n].ljust(n, b"\0")
    if ie in (27, 28) and rng.random() < 0.5:  # zero runs: the :: of RFC 5952
        b = bytes(x if rng.random() < 0.3 else 0 for x in b)
    return b


def _expected(msg_type: str, t: Template, body: bytes, ctx: MessageContext,
              ds: DomainState) -> list[reference.Record]:
    rows, _ = decode_records(t, body)
    return [reference.build_flow(ctx, ds, raw) for raw in rows]


def _normalise(flow: dict[str, object]) -> list[tuple[str, object]]:
    """The deliberate differences: etype is written for every row of a template that has an
    address or ipVersion (0 when the version is neither 4 nor 6), where the record path left
    it out; nothing else."""
    return [(k, v) for k, v in flow.items() if not (k == "etype" and v == 0)]


def _compare(got: list, want: list, what: str) -> None:
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert _normalise(g.flow) == _normalise(w.flow), f"{what} record {i}"
        assert repr(g.raw) == repr(w.raw), f"{what} record {i} raw"  # NaN != NaN


def _check_json(batches: list) -> None:
    for b in batches:
        want = "".join(json.dumps(r.flow, separators=(",", ":")) + "\n" for r in b.records())
        assert b.json_lines().decode() == want


def test_ipfix_columns_equal_the_record_path() -> None:
    rng = random.Random(SEED)
    for case in range(300):
        variable = case % 3 == 0
        fields = _template(rng, variable, enterprise=case % 5 == 0)
        specs = tuple(field_spec(f[0], f[1], f[3] if len(f) > 3 else 0) for f in fields)
        t = Template(300, 5, specs)
        if t.min_length == 0:
            continue
        d = Decoder()
        ds = DomainState()
        sets = [ipfix_set(2, ipfix_template(300, [f[:2] if len(f) == 3 else (f[0], f[1], f[3])
                                                  for f in fields]))]
        if case % 4 == 1:  # options: a selector table and the exporter's init time
            opts = ipfix_template(400, [(302, 8), (305, 4), (306, 4), (160, 8)], scope=1)
            recs = b"".join(struct.pack(">QIIQ", sid, 1, rate - 1, 1_700_000_000_000)
                            for sid, rate in ((1, 10), (4, 100), (6, 7)))
            sets[:0] = [ipfix_set(3, opts), ipfix_set(400, recs)]
            ds.samplers.update({1: 10, 4: 100, 6: 7})
            ds.sys_init_ms = 1_700_000_000_000
        body = b"".join(b"".join(_value(rng, f) for f in fields)
                        for _ in range(rng.randint(1, 40)))
        msg = ipfix_message([*sets, ipfix_set(300, body)], seq=case, domain=5)
        got = d.decode(msg, EXP, received_ns=123)
        ctx = MessageContext("IPFIX", 123, case, 5, EXP, 1_700_000_000)
        _compare(got, _expected("IPFIX", t, body, ctx, ds), f"case {case} {fields}")
        d.feed(msg, EXP, received_ns=123)
        _check_json(d.flush())


def test_v9_columns_equal_the_record_path() -> None:
    rng = random.Random(SEED + 1)
    for case in range(150):
        fields = [f for f in _template(rng, False, False) if f[1] != 0] or [(1, 4, None)]
        t = Template(260, 7, tuple(field_spec(f[0], f[1]) for f in fields))
        d = Decoder()
        tmpl = struct.pack(">HH", 260, len(fields)) + b"".join(struct.pack(">HH", *f[:2])
                                                               for f in fields)
        body = b"".join(b"".join(_value(rng, f) for f in fields)
                        for _ in range(rng.randint(1, 30)))
        msg = v9_packet([struct.pack(">HH", 0, 4 + len(tmpl)) + tmpl,
                         struct.pack(">HH", 260, 4 + len(body)) + body], seq=case,
                        uptime_ms=3_600_000)
        got = d.decode(msg, EXP, received_ns=9)
        ctx = MessageContext("NETFLOW_V9", 9, case, 7, EXP, 1_700_000_000,
                             sys_uptime_ms=3_600_000)
        _compare(got, _expected("NETFLOW_V9", t, body, ctx, DomainState()), f"v9 case {case}")
        d.feed(msg, EXP, received_ns=9)
        _check_json(d.flush())


def test_v5_columns_equal_the_record_path() -> None:
    rng = random.Random(SEED + 2)
    d = Decoder()
    for seq in range(0, 3000, 30):
        recs = [{"src": rng.getrandbits(32), "dst": rng.getrandbits(32),
                 "packets": rng.getrandbits(32), "bytes": rng.getrandbits(32),
                 "first": rng.getrandbits(32), "last": rng.getrandbits(32),
                 "sport": rng.getrandbits(16), "dport": rng.getrandbits(16),
                 "proto": rng.choice((1, 6, 17, 1)), "flags": rng.getrandbits(8)}
                for _ in range(rng.randint(1, 30))]
        msg = v5_packet(recs, seq=seq, sampling=0x4000 | 100)
        got = d.decode(msg, EXP, received_ns=1)
        ctx = MessageContext("NETFLOW_V5", 1, seq, 1 << 8 | 2, EXP, 1_700_000_000,
                             sys_uptime_ms=100_000, unix_nsecs=0, header_sampling=100)
        want = []
        for r in recs:
            raw = {"sourceIPv4Address": r["src"], "destinationIPv4Address": r["dst"],
                   "ipNextHopIPv4Address": 0, "ingressInterface": 1, "egressInterface": 2,
                   "packetDeltaCount": r["packets"], "octetDeltaCount": r["bytes"],
                   "flowStartSysUpTime": r["first"], "flowEndSysUpTime": r["last"],
                   "sourceTransportPort": r["sport"], "destinationTransportPort": r["dport"],
                   "tcpControlBits": r["flags"], "protocolIdentifier": r["proto"],
                   "ipClassOfService": 0, "bgpSourceAsNumber": 0, "bgpDestinationAsNumber": 0,
                   "sourceIPv4PrefixLength": 24, "destinationIPv4PrefixLength": 16,
                   "icmpTypeCodeIPv4": 0}
            if r["proto"] == 1:  # the ICMP type and code that v5 exporters put in the port
                raw["icmpTypeCodeIPv4"], raw["destinationTransportPort"] = r["dport"], 0
            raw["engineType"], raw["engineId"] = 1, 2
            rec = reference.build_flow(ctx, DomainState(), raw)
            # The record path wrote the ICMP fields of v5 ICMP flows only; columns write
            # them for every row (0 when not ICMP), as for IPFIX and v9 templates.
            rec.flow.setdefault("icmp_type", 0)
            rec.flow.setdefault("icmp_code", 0)
            want.append(rec)
        for g, w in zip(got, want, strict=True):
            assert sorted(g.flow.items()) == sorted(w.flow.items())
            assert g.raw == w.raw
        d.feed(msg, EXP, received_ns=1)
        _check_json(d.flush())


def test_runs_of_many_messages_and_exporters_decode_as_one_batch() -> None:
    """Data Sets of one Template shape from many messages and exporters: one batch, each row
    with its own message's header facts."""
    d = Decoder()
    fields = [(8, 4), (12, 4), (1, 8), (2, 8), (152, 8)]
    rec = struct.Struct(">IIQQQ")
    for i in range(50):
        exp = f"192.0.2.{i % 5}"
        sets = [ipfix_set(2, ipfix_template(256, fields))] if i < 5 else []
        sets.append(ipfix_set(256, b"".join(rec.pack(i, j, j, 1, 1_700_000_000_000 + i)
                                            for j in range(3))))
        d.feed(ipfix_message(sets, seq=3 * (i // 5), domain=1), exp, received_ns=1000 + i)
    assert d.pending_records == 150
    (b,) = d.flush()
    assert b.n == 150 and not d.stats.malformed and d.stats.lost_records == 0
    rows = b.records()
    assert [r.flow["time_received_ns"] for r in rows[::3]] == [1000 + i for i in range(50)]
    assert [r.flow["sampler_address"] for r in rows[::3]] == [f"192.0.2.{i % 5}"
                                                             for i in range(50)]
    assert [r.raw["sourceIPv4Address"] for r in rows[::3]] == list(range(50))


def test_ipv6_text_is_rfc5952() -> None:
    cases = {"2001:db8::1": "20010db8000000000000000000000001", "::": "0" * 32,
             "1::": "0001" + "0" * 28, "1:0:1:0:1:0:1:0": "0001000000010000" * 2,
             "1:0:0:1::": "000100000000000100000000" + "0" * 8,
             "::ffff:c000:280": "00000000000000000000ffffc0000280"}
    for text, h in cases.items():
        b = bytes.fromhex(h)
        assert ipv6_text(b) == text
        from probe.collect import _jsonl
        from probe.collect.columns import IPV6, Column
        from probe.collect.flows import json_plan
        plan = json_plan({"a": Column(IPV6, np.frombuffer(b, np.uint8).reshape(1, 16))})
        assert _jsonl.render(1, plan) == f'{{"a":"{text}"}}\n'.encode()
