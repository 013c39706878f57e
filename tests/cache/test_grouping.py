"""Grouping by flow key stays exact when the 64-bit key hash collides."""

from __future__ import annotations

import numpy as np
import pytest

import probe.cache.grouping as grouping


@pytest.mark.parametrize("collide", [False, True])
def test_groups_hold_one_key_each_in_capture_order(collide: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if collide:  # every key hashes alike: only the exact fallback can separate them
        monkeypatch.setattr(grouping, "_hash", lambda w: np.zeros(w.shape[1], np.uint64))
    keys = np.zeros((500, 16), np.uint8)
    keys[:, [0, 9]] = np.random.default_rng(1).integers(0, 4, (500, 2))  # one in each word
    words = keys.view("<u8").T.copy()  # word-major, as key_matrix gives them
    g = grouping.group(words)
    assert g.count == len({bytes(r) for r in keys}) == 16
    assert sorted(grouping.key_rows(g.keys)) == sorted({bytes(r) for r in keys})
    bounds = [*g.starts.tolist(), 500]
    for i in range(g.count):
        members = g.order[bounds[i]:bounds[i + 1]]
        assert {bytes(keys[m]) for m in members.tolist()} == {g.key_bytes()[i]}
        assert members.tolist() == sorted(members.tolist())
    assert sorted(g.order.tolist()) == list(range(500))
