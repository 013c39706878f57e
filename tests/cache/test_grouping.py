"""Grouping by flow key stays exact when the 64-bit key hash collides."""

from __future__ import annotations

import numpy as np
import pytest

import probe.cache.grouping as grouping


@pytest.mark.parametrize("collide", [False, True])
def test_groups_hold_one_key_each_in_capture_order(collide: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if collide:  # every key hashes alike: only the exact fallback can separate them
        monkeypatch.setattr(grouping, "_hash", lambda w: np.zeros(w.shape[0], np.uint64))
    keys = np.zeros((500, 16), np.uint8)
    keys[:, :2] = np.random.default_rng(1).integers(0, 4, (500, 2))
    g = grouping.group(keys)
    assert g.count == len({bytes(r) for r in keys}) == 16
    bounds = [*g.starts.tolist(), 500]
    for i in range(g.count):
        members = g.order[bounds[i]:bounds[i + 1]]
        assert (keys[members] == g.keys[i]).all()
        assert members.tolist() == sorted(members.tolist())
    assert sorted(g.order.tolist()) == list(range(500))
