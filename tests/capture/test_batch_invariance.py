"""The decoded stream must not depend on how it was cut into batches."""

from __future__ import annotations

import numpy as np
import pytest

from probe.capture import COLUMNS
from tests.capture.helpers import PCAPS, read_all

FILES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("name", FILES)
def test_batch_sizes_1_7_65536_give_identical_columns(name):
    results = [read_all(PCAPS / name, batch_size=size) for size in (1, 7, 65536)]
    (reference, ref_stats), *others = results
    for batch, stats in others:
        assert stats == ref_stats
        for column in COLUMNS:
            np.testing.assert_array_equal(
                getattr(batch, column), getattr(reference, column), err_msg=column
            )
