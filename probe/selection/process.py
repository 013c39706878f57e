"""SelectionProcess: a configured chain of selectors applied in order (RFC 6728 §4.2)."""

from __future__ import annotations

import numpy as np

from probe.capture.batch import PacketBatch
from probe.config import model
from probe.selection.selectors import Selector, build_selector


class SelectionProcess:
    """Each selector sees only what the previous ones selected, as RFC 5475 §6 composes them."""

    def __init__(self, cfg: model.SelectionProcess) -> None:
        self.name = cfg.name
        self.selectors: list[Selector] = [build_selector(s) for s in cfg.selectors]

    def select(self, batch: PacketBatch) -> PacketBatch:
        """The packets every selector kept, in capture order."""
        index = np.arange(len(batch))
        for sel in self.selectors:
            if index.shape[0] == 0:
                break
            sub = batch if index.shape[0] == len(batch) else batch.take(index)
            index = index[sel.select(sub)]
        return batch if index.shape[0] == len(batch) else batch.take(index)
