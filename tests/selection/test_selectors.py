"""RFC 5475 selectors: exactly which packets each selects, whatever the batch split."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from probe.capture.batch import PacketBatch
from probe.config import model
from probe.selection import SelectionProcess, build_selector

SPLITS = (1, 7, 100, 65536)


def stream(n: int, seed: int = 0) -> PacketBatch:
    rng = np.random.default_rng(seed)
    b = PacketBatch.empty(n)
    b.ts_us[:] = 1_700_000_000_000_000 + np.sort(rng.integers(0, 50_000, n))
    b.ip_len[:] = np.arange(n)  # packet identity, to see which were selected
    b.ip_version[:] = 4
    return b


def run(cfg: model.Selector, b: PacketBatch, size: int) -> tuple[np.ndarray, object]:
    sel = build_selector(cfg)
    masks = [sel.select(b.take(np.arange(i, min(i + size, len(b)))))
             for i in range(0, len(b), size)]
    return np.concatenate(masks), sel


CONFIGS: list[model.Selector] = [
    model.SelectAll(name="all"),
    model.SampCountBased(name="count", packet_interval=3, packet_space=5),
    model.SampTimeBased(name="time", time_interval=1000, time_space=4000),
    model.SampRandOutOfN(name="rand", size=3, population=10, seed=7),
    model.SampUniProb(name="prob", probability=0.25, seed=7),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.method)
def test_same_selection_for_any_batch_split_and_counts_add_up(cfg: model.Selector) -> None:
    b = stream(1000)
    results = [run(cfg, b, size) for size in SPLITS]
    for mask, sel in results:
        assert np.array_equal(mask, results[0][0])
        assert sel.packets_observed == 1000
        assert sel.packets_observed == int(mask.sum()) + sel.packets_dropped


def test_count_based_selects_exactly_the_packets_in_each_interval() -> None:
    mask, _ = run(CONFIGS[1], stream(1000), 7)
    expected = np.zeros(1000, bool)
    for start in range(0, 1000, 8):  # 3 selected, then 5 skipped
        expected[start:start + 3] = True
    assert np.array_equal(mask, expected)


def test_time_based_selects_exactly_the_packets_in_the_time_intervals() -> None:
    b = stream(1000)
    mask, _ = run(CONFIGS[2], b, 13)
    t0 = int(b.ts_us[0])  # the phase origin is the first packet's time
    in_interval = [(int(t) - t0) % 5000 < 1000 for t in b.ts_us]
    assert mask.tolist() == in_interval
    assert 0 < mask.sum() < 1000


def test_rand_out_of_n_takes_size_out_of_every_population() -> None:
    mask, _ = run(CONFIGS[3], stream(1000), 9)
    assert mask.reshape(100, 10).sum(axis=1).tolist() == [3] * 100
    again, _ = run(CONFIGS[3], stream(1000), 1000)
    assert np.array_equal(mask, again)  # the seed makes it reproducible
    other, _ = run(replace(CONFIGS[3], seed=8), stream(1000), 1000)
    assert not np.array_equal(mask, other)


def test_uni_prob_selects_about_the_probability() -> None:
    mask, _ = run(CONFIGS[4], stream(20000), 4096)
    assert abs(mask.mean() - 0.25) < 0.02


def test_selectors_of_a_process_apply_in_order() -> None:
    sp = SelectionProcess(model.SelectionProcess(name="sp", selectors=(
        model.SampCountBased(name="one-of-two", packet_interval=1, packet_space=1),
        model.SampCountBased(name="two-of-three", packet_interval=2, packet_space=1))))
    b = stream(60)
    out = PacketBatch.concat([sp.select(b.take(np.arange(i, min(i + 7, 60))))
                              for i in range(0, 60, 7)])
    # The second selector counts only what the first kept: packets 0,2,4,... -> keeps 0,2,_,6,8,_
    assert out.ip_len.tolist() == [i for i in range(0, 60, 2) if (i // 2) % 3 != 2]
    first, second = sp.selectors
    assert (first.packets_observed, first.packets_dropped) == (60, 30)
    assert (second.packets_observed, second.packets_dropped) == (30, 10)
