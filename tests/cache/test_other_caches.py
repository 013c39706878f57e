"""permanentCache (periodic cumulative export, full cache) and immediateCache."""

from __future__ import annotations

from dataclasses import replace

from probe.cache import build_cache
from tests.cache.synth import cache_cfg, packets, record_set, split
from tests.cache.test_timeout_cache import T0, flow_packets, meter


def test_permanent_cache_exports_cumulative_counters_every_interval() -> None:
    cfg = cache_cfg("permanentCache", interval=10)
    totals = tuple(replace(f, ie_name=f.ie_name.replace("Delta", "Total"),
                           ie_id={1: 85, 2: 86}.get(f.ie_id, f.ie_id))
                   for f in cfg.layout.fields)  # the IEs RFC 7012 has for running totals
    cache = build_cache(replace(cfg, layout=replace(cfg.layout, fields=totals)), 1)
    b = flow_packets([0.0, 5.0, 10.0, 12.0, 25.0, 26.0])
    rows = [(r["packetTotalCount"], r["flowEndReason"]) for rb in meter(cache, split(b, 4))
            for r in rb.rows()]
    # boundaries at 10 s and 20 s after the first packet; a packet at 10.0 s is in the first
    assert rows == [(3, 2), (4, 2), (6, 4)]


def test_permanent_cache_full_meters_no_new_flow() -> None:
    cache = build_cache(cache_cfg("permanentCache", interval=3, max_flows=10), 1)
    b = packets(3000, flows=40, seed=3, span_us=20_000_000)
    rbs = meter(cache, split(b, 333))
    final = [rb for rb in rbs if (rb.columns["_end_reason"] == 4).all()]
    assert sum(len(rb) for rb in final) == 10
    counted = sum(int(rb.columns["_packets"].sum()) for rb in final)
    assert counted + cache.stats.packets_dropped == 3000


def test_permanent_and_immediate_records_do_not_depend_on_batch_size() -> None:
    b = packets(800, flows=40, seed=3, span_us=20_000_000)
    for cfg in (cache_cfg("permanentCache", interval=3), cache_cfg("immediateCache")):
        runs = [record_set(meter(build_cache(cfg, 1), split(b, s))) for s in (1, 7, 65536)]
        assert runs[0] == runs[1] == runs[2]


def test_immediate_cache_one_record_per_packet() -> None:
    b = flow_packets([0.0, 0.5, 1.0])
    rows = [r for rb in meter(build_cache(cache_cfg("immediateCache"), 1), [b])
            for r in rb.rows()]
    assert [(r["packetDeltaCount"], r["flowStartMilliseconds"], r["flowEndReason"])
            for r in rows] == [(1, T0 // 1000 + i * 500, 3) for i in range(3)]
