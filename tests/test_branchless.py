"""pick/keep give exactly what np.where gives, dtype included."""

from __future__ import annotations

import numpy as np
import pytest

from probe.branchless import keep, pick


@pytest.mark.parametrize("dtypes", [("uint8", "uint8"), ("int32", "int64"), ("uint64", "uint64"),
                                    ("uint16", "int32")])
def test_pick_and_keep_equal_np_where(dtypes: tuple[str, str]) -> None:
    rng = np.random.default_rng(5)
    cond = rng.random(1000) < 0.4
    a = rng.integers(0, np.iinfo(dtypes[0]).max, 1000, dtype=dtypes[0], endpoint=True)
    b = rng.integers(0, np.iinfo(dtypes[1]).max, 1000, dtype=dtypes[1], endpoint=True)
    want = np.where(cond, a, b)
    got = pick(cond, a, b)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    want = np.where(cond, a, 0)
    got = keep(cond, a)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    rows = rng.integers(0, 256, (1000, 16), dtype=np.uint8)
    assert np.array_equal(keep(cond, rows), np.where(cond[:, None], rows, 0))
