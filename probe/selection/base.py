"""What every runtime selector is: a mask per batch, and RFC 6728's two counters.

Its own module so the sampling selectors (``selectors``) and the filters (``filters``) share
it without importing each other.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from probe.capture.batch import PacketBatch


class Selector(Protocol):
    name: str
    packets_observed: int
    packets_dropped: int

    def select(self, batch: PacketBatch) -> np.ndarray: ...


class Counted:
    """RFC 6728 selector state: packetsObserved = selected + packetsDropped, always."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.packets_observed = 0
        self.packets_dropped = 0

    def _account(self, mask: np.ndarray) -> np.ndarray:
        n = int(mask.shape[0])
        self.packets_observed += n
        self.packets_dropped += n - int(np.count_nonzero(mask))
        return mask
