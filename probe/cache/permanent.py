"""permanentCache and immediateCache (RFC 6728 §4.3).

permanentCache: flows are never removed. Every ``exportInterval`` seconds of packet time
(counted from ``sys_init_us``) each cached flow is exported with its counters so far and
stays cached. The counters are cumulative, so the layout carries octetTotalCount and
packetTotalCount (RFC 7012 defines the *DeltaCount IEs as "since the previous report"; the
config check enforces this). The export at boundary ``k`` holds exactly the
packets whose time is at or before the boundary, as a packet-at-a-time meter would send it
when the first later packet arrives. Such a periodic record carries flowEndReason 2 (active
timeout, the nearest RFC 7012 reason: the flow is still alive). At end of input every flow is
exported once more with reason 4. When ``maxFlows`` flows are cached, RFC 6728's maxFlows text
applies ("an additional Flow can be measured only if an existing entry is removed") and a
permanent cache never removes one: packets of new flows are not metered and are counted in
``stats.packets_dropped``.

immediateCache: every selected packet is one record, ended as soon as it is metered
(flowEndReason 3, end of flow detected: the flow is the packet); its layout may also carry
the fields of a PSAMP packet report (``probe.cache.reports``).
"""

from __future__ import annotations

import numpy as np

from probe.cache.base import END_ACTIVE, END_OF_FLOW, CacheBase, reduce_runs
from probe.cache.reports import report_values, reports
from probe.capture.batch import PacketBatch
from probe.config import model


class ImmediateCache(CacheBase):
    def __init__(self, cfg: model.Cache, observation_domain_id: int) -> None:
        super().__init__(cfg, observation_domain_id)
        self.reports = reports(cfg.layout)

    def process(self, batch: PacketBatch) -> None:
        if len(batch) == 0:
            return
        p = self.prepare(batch)
        self.stats.flows_created += len(batch)
        every = np.arange(len(batch))
        chunk = reduce_runs(p, every, every, p.t)
        if self.reports:  # PSAMP packet reports
            chunk.update(report_values(batch, self.cfg.layout, self.via, self.digests))
        self.expire(chunk, END_OF_FLOW)


class PermanentCache(CacheBase):
    def __init__(self, cfg: model.Cache, observation_domain_id: int) -> None:
        super().__init__(cfg, observation_domain_id)
        self.interval_us = (cfg.export_interval or 0) * 1_000_000
        self.next_export: int | None = None

    def table_options(self, cfg: model.Cache) -> dict[str, int | bool | None]:
        return {"max_flows": cfg.max_flows or None, "refuse_when_full": True}

    def _export_due(self, clock: int) -> None:
        """Periodic exports for every boundary the clock has passed."""
        if not self.interval_us or self.next_export is None:
            return
        if clock > self.next_export:
            slots = self.table.live_slots()
            if slots.shape[0]:
                self.expire(self.table.read(slots), END_ACTIVE)
            passed = (clock - self.next_export - 1) // self.interval_us + 1
            self.next_export += passed * self.interval_us

    def advance(self, now_us: int) -> None:
        self._export_due(now_us)

    def process(self, batch: PacketBatch) -> None:
        n = len(batch)
        if n == 0:
            return
        p = self.prepare(batch)
        if self.next_export is None and self.interval_us:
            assert self.sys_init_us is not None
            self.next_export = self.sys_init_us + self.interval_us
        pos = 0
        while pos < n:
            self._export_due(int(p.t[pos]))
            end = n
            if self.next_export is not None:
                end = int(np.searchsorted(p.t, self.next_export, side="right"))
                end = max(end, pos + 1)
            self.stats.packets_dropped += self._meter(p, pos, end)
            pos = end
