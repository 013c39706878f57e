"""Runtime selectors (RFC 5475 §6.1, RFC 6728 §4.2): one per configured selector.

Each selector decides for a whole PacketBatch at once and returns a boolean mask, so a
selection process costs a few numpy operations per batch, never a Python loop per packet.
Every selector carries its state across batches (packet counts, the time-based phase, the
random generator), which makes its decisions independent of how the packet stream is cut into
batches: a replay with batch size 1 selects exactly the packets a replay with batch size 65536
selects.
"""

from __future__ import annotations

import numpy as np

from probe.capture.batch import PacketBatch
from probe.config import model
from probe.selection.base import Counted, Selector


class SelectAllSelector(Counted):
    def select(self, batch: PacketBatch) -> np.ndarray:
        return self._account(np.ones(len(batch), dtype=bool))


class CountBasedSelector(Counted):
    """sampCountBased: the first ``packet_interval`` of every ``interval + space`` packets.

    The period is counted over the packets this selector observes (after earlier selectors),
    starting with the first one: position ``p`` (0-based, over the whole stream) is selected
    when ``p mod (interval + space) < interval`` (RFC 5475 §6.1.1, systematic count-based).
    """

    def __init__(self, cfg: model.SampCountBased) -> None:
        super().__init__(cfg.name)
        self.interval = cfg.packet_interval
        self.period = cfg.packet_interval + cfg.packet_space

    def select(self, batch: PacketBatch) -> np.ndarray:
        pos = np.arange(self.packets_observed, self.packets_observed + len(batch), dtype=np.int64)
        return self._account(pos % self.period < self.interval)


class TimeBasedSelector(Counted):
    """sampTimeBased: packets whose time falls in ``time_interval`` µs out of every period.

    RFC 5475 §6.1.1 leaves the phase open; here the periods start at the time of the first
    packet this selector observes (origin ``t0``): a packet at time ``t`` is selected when
    ``(t - t0) mod (interval + space) < interval``. Packet times before ``t0`` (a capture with
    time going backwards) are taken modulo the period like any other, so the rule stays a pure
    function of packet time and the result does not depend on batching.
    """

    def __init__(self, cfg: model.SampTimeBased) -> None:
        super().__init__(cfg.name)
        self.interval = cfg.time_interval
        self.period = cfg.time_interval + cfg.time_space
        self.origin_us: int | None = None

    def select(self, batch: PacketBatch) -> np.ndarray:
        if len(batch) == 0:
            return self._account(np.zeros(0, dtype=bool))
        if self.origin_us is None:
            self.origin_us = int(batch.ts_us[0])
        phase = np.mod(batch.ts_us - self.origin_us, self.period)
        return self._account(phase < self.interval)


class RandOutOfNSelector(Counted):
    """sampRandOutOfN: exactly ``size`` packets chosen at random from each ``population``.

    Populations are consecutive runs of ``population`` observed packets. The choice for a
    population is drawn when the population starts, so a population spanning two batches is
    decided once and split cleanly; a seed makes the choice reproducible.
    """

    def __init__(self, cfg: model.SampRandOutOfN) -> None:
        super().__init__(cfg.name)
        self.size = cfg.size
        self.population = cfg.population
        self.rng = np.random.default_rng(cfg.seed)
        self._current = np.zeros(0, dtype=bool)  # chosen slots of the open population

    def _draw(self, populations: int) -> np.ndarray:
        """Selection flags for ``populations`` whole populations, one row each."""
        keys = self.rng.random((populations, self.population))
        ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
        return (ranks < self.size).ravel()

    def select(self, batch: PacketBatch) -> np.ndarray:
        n = len(batch)
        offset = self.packets_observed % self.population
        have = self._current[offset:] if offset else np.zeros(0, dtype=bool)
        missing = n - have.shape[0]
        if missing > 0:
            fresh = self._draw(-(-missing // self.population))
            have = np.concatenate([have, fresh])
            self._current = fresh[-self.population:]  # the population the next batch continues
        return self._account(have[:n].copy())


class UniProbSelector(Counted):
    """sampUniProb: each packet independently with ``probability`` (seedable generator).

    One uniform draw per observed packet in stream order, so the decisions are the same
    whatever the batch size.
    """

    def __init__(self, cfg: model.SampUniProb) -> None:
        super().__init__(cfg.name)
        self.probability = cfg.probability
        self.rng = np.random.default_rng(cfg.seed)

    def select(self, batch: PacketBatch) -> np.ndarray:
        return self._account(self.rng.random(len(batch)) < self.probability)


def build_selector(cfg: model.Selector) -> Selector:
    if isinstance(cfg, model.SelectAll):
        return SelectAllSelector(cfg.name)
    if isinstance(cfg, model.SampCountBased):
        return CountBasedSelector(cfg)
    if isinstance(cfg, model.SampTimeBased):
        return TimeBasedSelector(cfg)
    if isinstance(cfg, model.SampRandOutOfN):
        return RandOutOfNSelector(cfg)
    if isinstance(cfg, model.SampUniProb):
        return UniProbSelector(cfg)
    from probe.selection.filters import FilterHashSelector, FilterMatchSelector

    if isinstance(cfg, model.FilterHash):
        return FilterHashSelector(cfg)
    if isinstance(cfg, model.FilterMatch):
        return FilterMatchSelector(cfg)
    raise TypeError(f"unknown selector {cfg!r}")


def columns_for(selectors: tuple[model.Selector, ...]) -> frozenset[str]:
    """The PacketBatch columns these selectors read besides packet times: the sampling ones
    read only times (or nothing), the filters read what their method needs."""
    from probe.selection.filters import columns_read

    out: set[str] = set()
    for cfg in selectors:
        if isinstance(cfg, model.FilterHash | model.FilterMatch):
            out |= columns_read(build_selector(cfg))  # type: ignore[arg-type]
    return frozenset(out)
