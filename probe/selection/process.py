"""SelectionProcess: a configured chain of selectors applied in order (RFC 6728 §4.2)."""

from __future__ import annotations

import numpy as np

from probe.capture.batch import PacketBatch
from probe.config import model
from probe.selection.selectors import Selector, build_selector


class SelectionProcess:
    """Each selector sees only what the previous ones selected, as RFC 5475 §6 composes them.

    A filterHash with digestOutput hands on the hash of each packet it selects: ``digests``
    holds them for the packets ``select`` returned (zeros when none ran), which PSAMP packet
    reports carry as digestHashValue.
    """

    def __init__(self, cfg: model.SelectionProcess) -> None:
        self.name = cfg.name
        self.selectors: list[Selector] = [build_selector(s) for s in cfg.selectors]
        self.digests: np.ndarray | None = None  # None: no selector outputs a digest
        self._digest = any(getattr(s, "digest_output", False) for s in self.selectors)

    def select(self, batch: PacketBatch) -> PacketBatch:
        """The packets every selector kept, in capture order."""
        index = np.arange(len(batch))
        digest: tuple[np.ndarray, np.ndarray] | None = None
        for sel in self.selectors:
            if index.shape[0] == 0:
                break
            sub = batch if index.shape[0] == len(batch) else batch.take(index)
            mask = sel.select(sub)
            index = index[mask]
            if self._digest and getattr(sel, "digest_output", False):
                digest = (index, sel.last_hashes[mask])  # type: ignore[attr-defined]
        if self._digest:
            values = np.zeros(len(batch), np.uint64)
            if digest is not None:
                values[digest[0]] = digest[1]
            self.digests = values[index]
        return batch if index.shape[0] == len(batch) else batch.take(index)
