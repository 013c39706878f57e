"""timeoutCache and naturalCache (RFC 6728 §4.3): flows end on idle/active timeouts, on a full
cache (least recently used flow, reason 5) and, for the natural cache, on TCP FIN or RST.

The records are those of a packet-at-a-time meter that, for every packet, (1) advances the
packet clock to the packet's time, (2) sweeps: ends every cached flow whose deadline the clock
has passed (``clock > last + idle`` → reason 1, ``clock > start + active`` → reason 2; when
both have passed, the reason of the earlier deadline, idle on a tie), (3) if the packet starts
a new flow and the cache is full, ends the least recently used flow (reason 5), (4) adds the
packet, and for the natural cache ends the flow if the packet is TCP with FIN or RST (reason 3,
that packet included). At end of input every flow ends (reason 4).

That is also how the flow table's compiled core runs (``probe.cache._flowtable``), so a whole
batch is one call and any batch size gives the same records. Eviction on a full cache is exact
LRU, not softflowd's bulk expiry of the flows closest to their timeouts: which flow is evicted
then depends on the traffic alone, never on how it was cut into batches, and the least
recently used flow is the one least likely to see another packet. Both deadlines need only the
heads of two lists: the least recently used flow has the earliest idle deadline, the oldest
flow the earliest active one.
"""

from __future__ import annotations

from probe.cache.base import CacheBase
from probe.capture.batch import PacketBatch
from probe.config import model


class TimeoutCache(CacheBase):
    def table_options(self, cfg: model.Cache) -> dict[str, int | bool | None]:
        return {"idle_us": cfg.idle_timeout * 1_000_000,
                "active_us": cfg.active_timeout * 1_000_000,
                "natural": cfg.kind == "naturalCache",
                "max_flows": cfg.max_flows or None}  # 0 or absent: no limit

    def advance(self, now_us: int) -> None:
        """Live: expire on the wall clock. The packet clock stays where the packets left it,
        so flow times remain packet times."""
        self.table.core.sweep(now_us)
        self._drain(None)

    def process(self, batch: PacketBatch) -> None:
        if len(batch):
            self._meter(self.prepare(batch), 0, len(batch))
