"""Header windows read in place must equal windows over a zero-padded copy, at the very end
of the buffer too (the last packet's ports, a buffer shorter than one window)."""

from __future__ import annotations

import numpy as np
import pytest

from probe.capture.gather import PAD, Buffer


def _padded(buf: bytes, start: np.ndarray, width: int) -> np.ndarray:
    data = np.zeros(len(buf) + PAD, np.uint8)
    data[:len(buf)] = np.frombuffer(buf, np.uint8)
    top = data.shape[0] - width
    return np.stack([data[s:s + width] for s in np.clip(start, 0, top).tolist()])


@pytest.mark.parametrize("size", [0, 3, 13, 40, 63, 64, 65, 200])
@pytest.mark.parametrize("width", [2, 14, 16, 40])
def test_windows_equal_a_padded_copy(size: int, width: int) -> None:
    buf = np.random.default_rng(size).integers(1, 256, size, dtype=np.uint8).tobytes()
    start = np.arange(-2, size + 3, dtype=np.int32)  # every offset, and some out of range
    got = Buffer(buf).window(start, width)
    want = _padded(buf, start, width)
    inside = (start >= 0) & (start <= size)  # rows callers may use; others are masked garbage
    assert got.shape == (start.shape[0], width)
    np.testing.assert_array_equal(got[inside], want[inside])
