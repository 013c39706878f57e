"""Micro-benchmarks of the hot path, one per box: decode, cache update, record encoding.

`make bench` measures the whole probe against softflowd; these say which box a regression is
in. Under the suite's default ``--benchmark-disable`` each runs once as a plain test; time them
with ``pytest tests/bench --benchmark-enable``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pcapy
import pytest

from probe.cache import build_cache
from probe.cache.records import RecordBatch, column_spec
from probe.capture.batch import DecodeStats, PacketBatch
from probe.capture.decode import decode_batch
from probe.config.defaults import default_config, default_layout
from probe.config.model import Cache
from probe.export.templates import TemplateRegistry, encode_batch
from probe.ie import IPV6_ONLY
from tools import tracegen

PACKETS = 20_000


@pytest.fixture(scope="module")
def raw_batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, np.ndarray]:
    """One next_batch() worth of a generated trace, as the capture source gets it."""
    path = tmp_path_factory.mktemp("micro") / "t.pcap"
    tracegen.generate(path, PACKETS, seed=1)
    reader = pcapy.open_offline(str(path))
    data, packed = reader.next_batch(PACKETS)
    return data, np.frombuffer(packed, dtype=np.uint32).reshape(-1, 4)


def test_decode_batch(benchmark, raw_batch: tuple[bytes, np.ndarray]) -> None:
    data, meta = raw_batch
    batch = benchmark(decode_batch, data, meta, 1, DecodeStats())
    assert len(batch) == PACKETS
    assert set(np.unique(batch.ip_version)) == {4, 6}


def test_cache_update(benchmark, raw_batch: tuple[bytes, np.ndarray]) -> None:
    """A fresh timeout cache meters the whole batch and flushes it: every packet in a record."""
    batch = decode_batch(*raw_batch, 1, DecodeStats())
    cfg = default_config().caches[0]

    records = benchmark(_meter_once, cfg, batch)
    assert sum(int(r.columns["_packets"].sum()) for r in records) == PACKETS
    assert sum(int(r.columns["_octets"].sum()) for r in records) == int(batch.ip_len.sum())
    assert {r.ip_version for r in records} == {4, 6}


def _meter_once(cfg: Cache, batch: PacketBatch) -> list[RecordBatch]:
    """A fresh cache meters the batch and flushes: every record it makes."""
    cache = build_cache(cfg, 1)
    cache.process(batch)
    cache.flush()
    return cache.take_records()


def _records(n: int) -> RecordBatch:
    rng = np.random.default_rng(0)
    fields = tuple(f for f in default_layout(10).fields if f.ie_name not in IPV6_ONLY)
    cols: dict[str, np.ndarray] = {}
    for f in fields:
        dtype, shape = column_spec(f.ie_name)
        cols[f.ie_name] = rng.integers(0, 250, size=(n, *shape)).astype(dtype)
    start = 1_767_225_600_000_000 + rng.integers(0, 10**9, n)
    cols.update(_start_us=start, _end_us=start + 1000, _end_reason=np.ones(n, np.uint8),
                _packets=rng.integers(1, 100, n).astype(np.uint64),
                _octets=rng.integers(40, 10**5, n).astype(np.uint64))
    return RecordBatch("Flow cache", 1, 4, fields, cols, 1_767_225_600_000_000)


def test_encode_records(benchmark) -> None:
    records = _records(10_000)
    template = TemplateRegistry().for_batch(records)
    chunk = benchmark(encode_batch, records, template)
    assert chunk.n == 10_000
    assert len(chunk.payload) == 10_000 * template.record_len
    assert chunk.packets == int(records.columns["_packets"].sum())


def test_cache_update_full_cache_flood(benchmark) -> None:
    """Every packet a new flow into a full cache: one least-recently-used eviction per packet,
    and every packet still in exactly one record."""
    n = PACKETS
    batch = PacketBatch.empty(n)
    k = np.arange(n)
    batch.ts_us[:] = 1_767_225_600_000_000 + k
    batch.ip_version[:] = 4
    batch.src_addr[:, 0] = 10
    batch.src_addr[:, 1:4] = np.stack([(k >> 16) & 255, (k >> 8) & 255, k & 255], 1)
    batch.proto[:] = 6
    batch.dst_port[:] = 80
    batch.ip_len[:] = 40
    cfg = replace(default_config().caches[0], max_flows=1024)
    records = benchmark(_meter_once, cfg, batch)
    assert sum(len(r) for r in records) == n
    assert sum(int((r.columns["_end_reason"] == 5).sum()) for r in records) == n - 1024
