"""Hostile input: >= 100,000 mutated v5, v9 and IPFIX messages must never raise or grow memory.

A seeded mutation loop (reproducible; the seed is in the assertion message) over valid messages:
bit flips, byte overwrites with boundary values, truncation, extension, length-field lies in the
header and in set headers, splices of two messages, and template floods. One Decoder sees every
message from a few hundred exporter sessions, so the LRU and per-session bounds are exercised.
The bound checked: tracemalloc peak under ``MEMORY_BOUND`` (16 MiB) with the limits below.
"""

from __future__ import annotations

import random
import struct
import time
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from probe.collect import Decoder, Limits
from probe.collect.framing import StreamFramer
from probe.collect.limits import COST
from probe.collect.session import domain_cost, held_cost, template_cost
from tests.collect.wire import (
    ipfix_message,
    ipfix_set,
    ipfix_template,
    ipv4,
    v5_packet,
    v9_options_template,
    v9_packet,
    v9_template,
    varlen,
)

MESSAGES = 102_000
SEED = 20261123
MEMORY_BOUND = 16 * 1024 * 1024  # bytes, tracemalloc peak over the whole run
LIMITS = Limits(max_sessions=128, max_templates_per_session=64, max_held_per_session=16,
                held_max_age_s=5.0, state_bytes=8 << 20, exporter_bytes=2 << 20,
                session_bytes=1 << 20)
# What is kept whatever the budgets say: each session and the one domain a message needs.
FORCED = LIMITS.max_sessions * (COST["session"] + COST["domain"])


def charged(d: Decoder) -> int:
    """What the table holds, recomputed item by item: it must equal what it charged."""
    return sum(COST["session"] + sum(template_cost(t) for t in s.templates.values())
               + sum(held_cost(h) for h in s.held) + sum(domain_cost(x) for x in s.domains.values())
               for s in d.table.sessions.values())


def _seeds() -> list[bytes]:
    v4 = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 8), (1, 8), (152, 8), (153, 8), (6, 2)]
    rec = struct.pack(">IIBHHQQQQH", ipv4("10.0.0.1"), ipv4("10.0.0.2"), 6, 1, 2, 3, 4, 5, 6, 7)
    var_t = [(8, 4), (82, 65535), (137, 4, 2636), (156, 8)]
    var_r = struct.pack(">I", 1) + varlen(b"eth0") + b"\x00" * 4 + b"\x01" * 8
    ipfix = [
        ipfix_message([ipfix_set(2, ipfix_template(256, v4)), ipfix_set(256, rec * 3)], seq=0),
        ipfix_message([ipfix_set(3, ipfix_template(257, [(302, 8), (305, 4), (306, 4)], 1)),
                       ipfix_set(257, struct.pack(">QII", 1, 1, 9)),
                       ipfix_set(2, ipfix_template(258, var_t)), ipfix_set(258, var_r * 2)]),
        ipfix_message([ipfix_set(256, rec)]),
        ipfix_message([ipfix_set(2, struct.pack(">HH", 256, 0) + struct.pack(">HH", 2, 0))]),
    ]
    v9f = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 4), (1, 4), (22, 4), (21, 4), (48, 1)]
    v9r = struct.pack(">IIBHHIIIIB", 1, 2, 17, 53, 53, 1, 80, 10, 20, 3)

    def fs(i: int, b: bytes) -> bytes:
        return struct.pack(">HH", i, 4 + len(b)) + b

    v9 = [
        v9_packet([fs(0, v9_template(260, v9f)), fs(260, v9r * 4)]),
        v9_packet([fs(1, v9_options_template(300, [(1, 4)], [(48, 1), (50, 4)])),
                   fs(300, struct.pack(">IBI", 0, 3, 100)), fs(260, v9r)]),
    ]
    r5 = {"src": 1, "dst": 2, "packets": 3, "bytes": 4, "first": 5, "last": 6, "sport": 7,
          "dport": 8, "proto": 6}
    v5 = [v5_packet([r5] * 5), v5_packet([r5])]
    rng = random.Random(SEED - 1)
    floods = [_flood(rng) for _ in range(2)]
    return ipfix + v9 + v5 + floods


_EDGE = (0, 1, 3, 4, 0x7F, 0x80, 0xFF)
_EDGE16 = (0, 1, 3, 4, 5, 255, 256, 0x7FFF, 0x8000, 0xFFFF)


def _mutate(rng: random.Random, msg: bytes, seeds: list[bytes]) -> bytes:
    b = bytearray(msg)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        if op == 0 and b:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:  # boundary byte
            b[rng.randrange(len(b))] = rng.choice(_EDGE)
        elif op == 2 and len(b) > 1:  # boundary 16-bit value anywhere (lengths, counts, ids)
            i = rng.randrange(len(b) - 1)
            b[i:i + 2] = struct.pack(">H", rng.choice(_EDGE16))
        elif op == 3:  # truncate
            del b[rng.randrange(len(b) + 1):]
        elif op == 4:  # extend with garbage
            b += rng.randbytes(rng.randint(1, 64))
        elif op == 5 and len(b) >= 4 and b[1] == 10:  # IPFIX header length lie
            b[2:4] = struct.pack(">H", rng.randrange(65536))
        elif op == 6 and len(b) > 24:  # set/flowset header lie at a random 4-aligned offset
            i = rng.randrange(16, len(b) - 4, 4)
            b[i + 2:i + 4] = struct.pack(">H", rng.choice((*_EDGE16, rng.randrange(65536))))
        elif op == 7:  # splice with another seed
            other = rng.choice(seeds)
            b = b[:rng.randrange(len(b) + 1)] + bytearray(other[rng.randrange(len(other)):])
    return bytes(b)


def _flood(rng: random.Random) -> bytes:
    n = rng.randint(10, 120)
    if rng.random() < 0.5:
        recs = b"".join(ipfix_template(rng.randrange(256, 65536),
                                       [(rng.randrange(1, 500), rng.choice((1, 2, 4, 8, 65535)))
                                        for _ in range(rng.randint(1, 20))]) for _ in range(n))
        return ipfix_message([ipfix_set(2, recs[:65000])], domain=rng.randrange(4))
    recs = b"".join(v9_template(rng.randrange(256, 65536),
                                [(rng.randrange(1, 100), rng.choice((1, 2, 4)))
                                 for _ in range(rng.randint(1, 20))]) for _ in range(n))
    return v9_packet([struct.pack(">HH", 0, 4 + len(recs[:65000])) + recs[:65000]])


def _run(n: int, seed: int) -> tuple[Decoder, dict[int, int], int, int, float]:
    rng = random.Random(seed)
    seeds = _seeds()
    d = Decoder(LIMITS)
    versions = {5: 0, 9: 0, 10: 0}
    max_templates = max_held = 0
    t0 = time.perf_counter()
    for i in range(n):
        msg = _mutate(rng, rng.choice(seeds), seeds)
        if len(msg) >= 2 and msg[1] in versions and msg[0] == 0:
            versions[msg[1]] += 1
        # 140 sessions against a bound of 128: mostly warm state, some LRU eviction.
        port = rng.randrange(140)
        exporter = f"192.0.2.{port % 4}"
        d.decode(msg, exporter, ("udp", exporter, port), now=i / 1000)
        if i % 500 == 0:
            max_templates = max(max_templates, d.table.template_count())
            max_held = max(max_held, d.table.held_count())
            assert d.table.total_cost == charged(d) == sum(d.table.exporter_cost.values())
            assert d.table.total_cost <= LIMITS.state_bytes + FORCED
            d.expire(now=i / 1000)
    return d, versions, max_templates, max_held, time.perf_counter() - t0


def test_mutation_fuzz_no_exception_and_state_bounded() -> None:
    d, versions, max_templates, max_held, elapsed = _run(MESSAGES, SEED)
    print(f"\nfuzz: {MESSAGES} messages in {elapsed:.1f} s, by version {versions}, decoded "
          f"{d.stats.records} flow records, max templates {max_templates}, max held {max_held},"
          f" malformed {sum(d.stats.malformed.values())}: "
          f"{dict(d.stats.malformed.most_common(6))}")
    assert d.stats.malformed["internal_error"] == 0, f"decoder raised (seed {SEED})"
    assert min(versions.values()) > 15_000  # every protocol got its share
    assert d.stats.records > 10_000  # mutations still reach the record decoders
    assert len(d.table.sessions) <= LIMITS.max_sessions
    assert max_templates <= LIMITS.max_sessions * LIMITS.max_templates_per_session
    assert max_held <= LIMITS.max_sessions * LIMITS.max_held_per_session


def test_mutation_fuzz_memory_peak_under_bound() -> None:
    """tracemalloc costs ~4x, so a 10,000-message run from cold: the state saturates its
    bounds within a few thousand messages, so the peak here is the steady-state peak."""
    tracemalloc.start()
    try:
        d, _, _, _, elapsed = _run(10_000, SEED + 2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\nfuzz (traced): 10000 messages in {elapsed:.1f} s, tracemalloc peak "
          f"{peak / 2**20:.1f} MiB, sessions {len(d.table.sessions)}, "
          f"template fields {d.table.template_fields}, held bytes {d.table.held_bytes}")
    assert d.stats.malformed["internal_error"] == 0
    assert len(d.table.sessions) == LIMITS.max_sessions  # the bound was reached...
    assert peak < MEMORY_BOUND  # ...and memory stayed under the stated bound


def test_tcp_framer_survives_mutated_streams() -> None:
    rng = random.Random(SEED + 1)
    seeds = _seeds()
    for _ in range(2000):
        stream = b"".join(_mutate(rng, rng.choice(seeds), seeds) if rng.random() < 0.3
                          else rng.choice(seeds) for _ in range(rng.randint(1, 8)))
        f = StreamFramer(lambda s, t: rng.choice((None, 0, 1, 40)), 4096)
        pos = 0
        while pos < len(stream):
            n = rng.randint(1, 300)
            msgs, problem = f.feed(stream[pos:pos + n])
            pos += n
            assert all(msgs)
            if problem:
                break
        assert len(f.buf) <= 4096 + 300


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([5, 9, 10]), st.binary(max_size=600))
def test_arbitrary_bytes_after_a_version(version: int, tail: bytes) -> None:
    d = Decoder(LIMITS)
    d.decode(struct.pack(">H", version) + tail, "192.0.2.1")
    assert d.stats.malformed["internal_error"] == 0
