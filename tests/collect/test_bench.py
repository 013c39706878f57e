"""Decoder throughput, beside the decoders (goflow2 keeps its benchmarks the same way).

Run with ``pytest tests/collect/test_bench.py --benchmark-enable``; by default each body runs
once and checks what it decoded.
"""

from __future__ import annotations

import struct

from pytest_benchmark.fixture import BenchmarkFixture

from probe.collect import Decoder
from tests.collect.wire import ipfix_message, ipfix_set, ipfix_template, v5_packet, v9_packet

FIELDS = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 8), (1, 8), (152, 8), (153, 8), (6, 2),
          (136, 1)]
REC = struct.pack(">IIBHHQQQQHB", 1, 2, 6, 3, 4, 5, 6, 7, 8, 9, 1)


def test_bench_ipfix_30_records(benchmark: BenchmarkFixture) -> None:
    d = Decoder()
    d.decode(ipfix_message([ipfix_set(2, ipfix_template(256, FIELDS))]), "192.0.2.1")
    msg = ipfix_message([ipfix_set(256, REC * 30)])
    assert len(benchmark(d.decode, msg, "192.0.2.1")) == 30


def test_bench_v9_30_records(benchmark: BenchmarkFixture) -> None:
    d = Decoder()
    tmpl = struct.pack(">HH", 260, len(FIELDS)) + b"".join(struct.pack(">HH", *f) for f in FIELDS)
    d.decode(v9_packet([struct.pack(">HH", 0, 4 + len(tmpl)) + tmpl]), "192.0.2.1")
    body = REC * 30
    msg = v9_packet([struct.pack(">HH", 260, 4 + len(body)) + body])
    assert len(benchmark(d.decode, msg, "192.0.2.1")) == 30


def test_bench_v5_30_records(benchmark: BenchmarkFixture) -> None:
    d = Decoder()
    r = {"src": 1, "dst": 2, "packets": 3, "bytes": 4, "first": 5, "last": 6, "sport": 7,
         "dport": 8, "proto": 6}
    assert len(benchmark(d.decode, v5_packet([r] * 30), "192.0.2.1")) == 30
