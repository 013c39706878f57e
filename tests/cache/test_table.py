"""The flow table under the caches: first-packet values through eviction and slot reuse,
growth, and the most flows it holds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from probe.cache import build_cache
from probe.config.model import CacheField
from probe.ie import by_name
from tests.cache.synth import cache_cfg, packets, reference, split, summary_keyed
from tests.cache.test_timeout_cache import flood, meter

VALUES = ("ipClassOfService", "vlanId", "sourceMacAddress")


def _with_values(cfg):  # type: ignore[no-untyped-def]
    extra = tuple(CacheField(name=n, ie_id=by_name(n).id, ie_name=n)  # type: ignore[union-attr]
                  for n in VALUES)
    return replace(cfg, layout=replace(cfg.layout, fields=cfg.layout.fields + extra))


@pytest.mark.parametrize(("kind", "max_flows", "idle", "active"), [
    ("timeoutCache", 3, 1, 2), ("naturalCache", 5, 1, 0), ("timeoutCache", None, 0, 1)])
def test_each_record_carries_its_first_packets_values_whatever_the_batches(
        kind: str, max_flows: int | None, idle: int, active: int) -> None:
    """A non-key IE is the value of the flow's first packet: for flows ended in the batch that
    created them, for flows continued from earlier batches, and in slots used again."""
    cfg = _with_values(cache_cfg(kind, max_flows=max_flows, idle=idle, active=active))
    b = packets(700, flows=25, seed=7, fin_share=0.05, span_us=6_000_000)
    rng = np.random.default_rng(1)
    b.tos[:] = rng.integers(0, 256, len(b))  # every packet its own values
    b.vlan_id[:] = rng.integers(1, 4095, len(b))
    b.src_mac[:] = rng.integers(0, 1 << 48, len(b))
    want = reference(b, cfg, first_values=VALUES)
    for size in (1, 7, 65536):
        got = summary_keyed(meter(build_cache(cfg, 1), split(b, size)), VALUES)
        assert got == want, size


def test_an_unbounded_table_grows_and_keeps_every_flow() -> None:
    cfg = cache_cfg("timeoutCache", idle=300, active=1800)
    cache = build_cache(cfg, 1)
    b = flood(300_000)
    rbs = meter(cache, split(b, 65536))
    assert cache.table.peak == 300_000 and cache.table.cap >= 300_000
    assert sum(len(rb) for rb in rbs) == 300_000
    assert cache.stats.expired == {4: 300_000}
    starts = np.sort(np.concatenate([rb.columns["_start_us"] for rb in rbs]))
    assert np.array_equal(starts, np.sort(b.ts_us))  # each flow is its one packet


def test_a_full_table_stays_within_max_flows_and_its_spare_share() -> None:
    cache = build_cache(cache_cfg("timeoutCache", max_flows=1000, idle=300, active=1800), 1)
    meter(cache, split(flood(50_000), 65536))
    assert cache.table.peak == 1000
    assert cache.table.cap <= 1000 + 1000  # max_flows and the share for ended flows
    assert cache.stats.expired == {5: 49_000, 4: 1000}


def test_cached_records_show_every_flow_as_it_is_now_and_end_none() -> None:
    cache = build_cache(cache_cfg("timeoutCache", idle=300, active=1800), 1)
    b = packets(300, flows=20, seed=2)
    cache.process(b)
    now = cache.cached_records()
    assert sum(len(rb) for rb in now) == cache.table.live == 20
    assert sum(int(rb.columns["_packets"].sum()) for rb in now) == 300
    assert all((rb.columns["_end_reason"] == 0).all() for rb in now)
    cache.flush()
    ended = cache.take_records()  # the same flows, now ended (reason 4), nothing lost
    assert _rows(now) == _rows(ended)


def _rows(rbs: list) -> list[tuple]:
    key = ("sourceTransportPort", "_start_us", "_end_us", "_packets", "_octets")
    return sorted(row for rb in rbs for row in zip(*(rb.columns[k].tolist() for k in key),
                                                     strict=True))
