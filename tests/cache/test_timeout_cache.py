"""timeoutCache / naturalCache: end reasons, times, LRU under a flood, batch-size invariance."""

from __future__ import annotations

import numpy as np
import pytest

from probe.cache import build_cache
from probe.cache.base import CacheBase
from probe.cache.records import RecordBatch
from probe.capture.batch import PacketBatch
from probe.ie import IPV4_ONLY, IPV6_ONLY
from tests.cache.synth import cache_cfg, packets, record_set, reference, split

T0 = 1_700_000_000_000_000


def meter(cache: CacheBase, batches: list[PacketBatch]) -> list[RecordBatch]:
    out: list[RecordBatch] = []
    for b in batches:
        cache.process(b)
        out += cache.take_records()
    cache.flush()
    return out + cache.take_records()


def summary(rbs: list[RecordBatch]) -> list[tuple[int, int, int, int, int, int]]:
    rows = []
    for rb in rbs:
        c = rb.columns
        rows += [(rb.ip_version, int(c["_start_us"][i]), int(c["_end_us"][i]),
                  int(c["_packets"][i]), int(c["_octets"][i]), int(c["_end_reason"][i]))
                 for i in range(len(rb))]
    return sorted(rows)


CASES = [
    ("timeoutCache", None, 1, 0), ("timeoutCache", None, 0, 2), ("timeoutCache", None, 1, 3),
    ("timeoutCache", 7, 1, 3), ("timeoutCache", 2, 0, 0), ("naturalCache", None, 1, 3),
    ("naturalCache", 5, 2, 1), ("naturalCache", 1, 0, 0),
]


@pytest.mark.parametrize(("kind", "max_flows", "idle", "active"), CASES)
def test_records_match_the_packet_at_a_time_reference_for_any_batch_size(
        kind: str, max_flows: int | None, idle: int, active: int) -> None:
    cfg = cache_cfg(kind, max_flows=max_flows, idle=idle, active=active)
    b = packets(600, flows=40, seed=max_flows or 0, fin_share=0.05, v6_share=0.3,
                span_us=8_000_000)
    expected = reference(b, cfg)
    runs = [meter(build_cache(cfg, 1), split(b, size)) for size in (1, 7, 65536)]
    for rbs in runs:
        assert summary(rbs) == expected
    assert record_set(runs[0]) == record_set(runs[1]) == record_set(runs[2])


def flow_packets(times_s: list[float], flags: list[int] | None = None, *, port: int = 1000,
                 ) -> PacketBatch:
    n = len(times_s)
    b = PacketBatch.empty(n)
    b.ts_us[:] = T0 + (np.array(times_s) * 1e6).astype(np.int64)
    b.ip_version[:] = 4
    b.src_addr[:, :4] = [10, 0, 0, 1]
    b.dst_addr[:, :4] = [10, 0, 0, 2]
    b.proto[:] = 6
    b.src_port[:] = port
    b.dst_port[:] = 80
    b.ip_len[:] = 100
    b.ttl[:] = 64
    b.tcp_flags[:] = flags or [0x10] * n
    return b


def records(rbs: list[RecordBatch]) -> list[dict[str, int]]:
    out = []
    for rb in rbs:
        for i, row in enumerate(rb.rows()):
            row["_end_reason"] = int(rb.columns["_end_reason"][i])
            out.append(row)
    return sorted(out, key=lambda r: (r["flowStartMilliseconds"], r["sourceTransportPort"]))


def ms(t: float) -> int:
    return (T0 + int(t * 1e6)) // 1000


def summary_rows(rbs: list[RecordBatch]) -> list[tuple[int, int, int, int, int]]:
    return sorted((r["sourceTransportPort"], r["_end_reason"], r["flowStartMilliseconds"],
                   r["flowEndMilliseconds"], r["packetDeltaCount"]) for r in records(rbs))


def test_each_end_reason_where_it_should_be_with_first_and_last_packet_times() -> None:
    natural = build_cache(cache_cfg("naturalCache", idle=10, active=30), 1)
    stream = PacketBatch.concat([
        flow_packets([0.0, 1.5, 2.25], port=1),                  # idle: quiet after 2.25 s
        flow_packets([0.5, 9.0, 18.0, 27.0, 31.0], port=2),      # active: 30 s after 0.5 s
        flow_packets([1.0, 1.1, 1.2], [0x02, 0x10, 0x11], port=3),   # FIN ends it (reason 3)
        flow_packets([3.0, 3.5], [0x02, 0x04], port=4),          # RST ends it (reason 3)
        flow_packets([40.0, 41.0], port=7),                      # still open at the end
    ])
    stream = stream.take(np.argsort(stream.ts_us, kind="stable"))
    assert summary_rows(meter(natural, split(stream, 3))) == sorted([
        (1, 1, ms(0.0), ms(2.25), 3),
        (2, 2, ms(0.5), ms(27.0), 4), (2, 4, ms(31.0), ms(31.0), 1),
        (3, 3, ms(1.0), ms(1.2), 3),
        (4, 3, ms(3.0), ms(3.5), 2),
        (7, 4, ms(40.0), ms(41.0), 2),
    ])


def test_full_cache_exports_the_least_recently_used_flow() -> None:
    cache = build_cache(cache_cfg("timeoutCache", max_flows=2), 1)
    stream = PacketBatch.concat([flow_packets([0.0], port=1), flow_packets([1.0], port=2),
                                 flow_packets([2.0], port=1), flow_packets([3.0], port=3)])
    assert summary_rows(meter(cache, split(stream, 2))) == [
        (1, 4, ms(0.0), ms(2.0), 2), (2, 5, ms(1.0), ms(1.0), 1), (3, 4, ms(3.0), ms(3.0), 1)]


def test_timeout_cache_ignores_fin_and_fills_every_nonkey_field() -> None:
    cache = build_cache(cache_cfg("timeoutCache"), 1)
    b = flow_packets([0.0, 0.001, 0.002], [0x02, 0x11, 0x10])
    b.ttl[:] = [64, 3, 200]
    b.ip_len[:] = [40, 1500, 52]
    (rb,) = meter(cache, [b])
    (row,) = rb.rows()
    assert row["packetDeltaCount"] == 3 and row["octetDeltaCount"] == 1592
    assert row["tcpControlBits"] == 0x13 and row["flowEndReason"] == 4
    assert row["flowStartMilliseconds"] == ms(0.0) and row["flowEndMilliseconds"] == ms(0.002)
    assert rb.ip_version == 4
    names = {f.ie_name for f in rb.fields}
    assert not names & IPV6_ONLY and "sourceIPv4Address" in names
    assert row["sourceIPv4Address"] == 0x0A000001


def test_ipv6_flows_carry_no_ipv4_fields() -> None:
    b = packets(50, flows=5, v6_share=1.0)
    rbs = meter(build_cache(cache_cfg("timeoutCache"), 1), [b])
    assert {rb.ip_version for rb in rbs} == {6}
    for rb in rbs:
        assert not {f.ie_name for f in rb.fields} & IPV4_ONLY


def flood(n: int) -> PacketBatch:
    b = PacketBatch.empty(n)
    k = np.arange(n)
    b.ts_us[:] = T0 + k
    b.ip_version[:] = 4
    b.src_addr[:, 0] = 10
    b.src_addr[:, 1] = (k >> 16) & 255
    b.src_addr[:, 2] = (k >> 8) & 255
    b.src_addr[:, 3] = k & 255
    b.proto[:] = 17
    b.dst_port[:] = 53
    b.ip_len[:] = 60 + k % 7
    return b


def test_flood_of_a_million_flows_never_overfills_and_loses_no_packet() -> None:
    cache = build_cache(cache_cfg("timeoutCache", max_flows=10_000, idle=300, active=1800), 1)
    b = flood(1_000_000)
    rbs = meter(cache, split(b, 65536))
    assert cache.table.peak == 10_000  # the most flows the table ever held at once
    assert sum(int(rb.columns["_packets"].sum()) for rb in rbs) == 1_000_000
    assert sum(int(rb.columns["_octets"].sum()) for rb in rbs) == int(b.ip_len.sum())
    assert cache.stats.expired == {5: 990_000, 4: 10_000}


@pytest.mark.parametrize("extremes", [("minimumTTL", "maximumIpTotalLength"),
                                      ("maximumTTL", "minimumTTL", "minimumIpTotalLength")])
def test_ttl_and_length_extremes_span_every_batch_of_a_flow(extremes: tuple[str, ...]) -> None:
    """A cache keeps the extremes its layout exports (and only those): each record's minimum
    and maximum are over all of the flow's packets, whichever batches they came in."""
    from dataclasses import replace

    from probe.config.model import CacheField
    from probe.ie import by_name

    base = cache_cfg("timeoutCache")
    extra = tuple(CacheField(name=n, ie_id=by_name(n).id, ie_name=n)  # type: ignore[union-attr]
                  for n in extremes)
    cfg = replace(base, layout=replace(base.layout, fields=base.layout.fields + extra))
    b = packets(500, flows=30, seed=3, v6_share=0.3)
    key = [(int(b.ip_version[i]), int(b.src_port[i])) for i in range(len(b))]
    want: dict[tuple[int, int], dict[str, int]] = {}
    for i, k in enumerate(key):
        ttl, length = int(b.ttl[i]), int(b.ip_len[i])
        w = want.setdefault(k, {"minimumTTL": ttl, "maximumTTL": ttl,
                                "minimumIpTotalLength": length, "maximumIpTotalLength": length})
        w["minimumTTL"], w["maximumTTL"] = min(w["minimumTTL"], ttl), max(w["maximumTTL"], ttl)
        w["minimumIpTotalLength"] = min(w["minimumIpTotalLength"], length)
        w["maximumIpTotalLength"] = max(w["maximumIpTotalLength"], length)
    for size in (1, 7, 65536):
        cache = build_cache(cfg, 1)
        assert set(cache.table.state) & {"min_ttl", "max_ttl", "min_len", "max_len"} == {
            {"minimumTTL": "min_ttl", "maximumTTL": "max_ttl", "minimumIpTotalLength": "min_len",
             "maximumIpTotalLength": "max_len"}[n] for n in extremes}
        got = {}
        for rb in meter(cache, split(b, size)):
            for row in rb.rows():
                got[(rb.ip_version, row["sourceTransportPort"])] = {n: row[n] for n in extremes}
        assert got == {k: {n: w[n] for n in extremes} for k, w in want.items()}
