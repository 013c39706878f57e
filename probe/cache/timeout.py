"""timeoutCache and naturalCache (RFC 6728 §4.3): flows end on idle/active timeouts, on a full
cache (least recently used flow, reason 5) and, for the natural cache, on TCP FIN or RST.

Reference semantics: the records are those of a packet-at-a-time meter that, for every packet,
(1) advances the packet clock to the packet's time, (2) sweeps: ends every cached flow whose
deadline the clock has passed (``clock > last + idle`` → reason 1, ``clock > start + active``
→ reason 2; when both have passed, the reason of the earlier deadline, idle on a tie),
(3) if the packet starts a new flow and the cache is full, ends the least recently used flow
(reason 5), (4) adds the packet, and for the natural cache ends the flow if the packet is TCP
with FIN or RST (reason 3, that packet included). At end of input every flow ends (reason 4).

A whole batch gets the same records. Packets are grouped by key (numpy); inside a group a new
flow starts exactly where the reference would start one: after a FIN/RST, after a gap longer
than the idle timeout, or at the first packet past ``start + active`` (found by a binary search
per over-long flow, which is rare). Flows the batch does not touch are swept at the batch's
first and last packet times, which ends the same flows for the same reasons: a flow's records
depend on whether, not when, its deadline passed. Only the reason-5 eviction depends on the
cache's occupancy at each instant, so when a batch could fill the cache it is cut into windows
in which the reference's evictions are known in advance (see ``_windowed``).
"""

from __future__ import annotations

import numpy as np

from probe.cache.base import (
    END_ACTIVE,
    END_IDLE,
    END_OF_FLOW,
    END_RESOURCES,
    CacheBase,
    Prepared,
    fold_cached,
    reduce_runs,
)
from probe.cache.grouping import Groups, group, key_rows, take_keys
from probe.capture.batch import PacketBatch
from probe.config import model

_TCP = 6
_FIN_RST = 0x01 | 0x04
_NEVER = np.iinfo(np.int64).max


class TimeoutCache(CacheBase):
    def __init__(self, cfg: model.Cache, observation_domain_id: int) -> None:
        super().__init__(cfg, observation_domain_id)
        self.idle_us = cfg.idle_timeout * 1_000_000
        self.active_us = cfg.active_timeout * 1_000_000
        self.natural = cfg.kind == "naturalCache"
        self.max_flows = cfg.max_flows or None  # 0 or absent: no limit

    # ------------------------------------------------------------ timeouts
    def _time_reason(self, start: np.ndarray, last: np.ndarray) -> np.ndarray:
        if not self.idle_us:
            return np.full(start.shape, END_ACTIVE, np.uint8)
        if not self.active_us:
            return np.full(start.shape, END_IDLE, np.uint8)
        idle_first = last + self.idle_us <= start + self.active_us
        return np.where(idle_first, END_IDLE, END_ACTIVE).astype(np.uint8)

    def _deadlines(self, slots: np.ndarray) -> np.ndarray:
        dl = np.full(slots.shape, _NEVER, np.int64)
        st = self.table.state
        if self.idle_us:
            dl = np.minimum(dl, st["end"][slots] + self.idle_us)
        if self.active_us:
            dl = np.minimum(dl, st["start"][slots] + self.active_us)
        return dl

    def _sweep(self, clock: int) -> None:
        if not (self.idle_us or self.active_us) or self.table.live == 0:
            return
        slots = self.table.live_slots()
        gone = slots[self._deadlines(slots) < clock]
        if gone.shape[0]:
            c = self.table.remove(gone)
            self.expire(c, self._time_reason(c["start"], c["end"]))

    def advance(self, now_us: int) -> None:
        """Live: expire on the wall clock. The packet clock stays where the packets left it,
        so flow times remain packet times."""
        self._sweep(now_us)

    # ------------------------------------------------------------ batches
    def process(self, batch: PacketBatch) -> None:
        n = len(batch)
        if n == 0:
            return
        p = self.prepare(batch)
        self._sweep(int(p.t[0]))
        if self.max_flows is None or self.table.live + n <= self.max_flows:
            self._ingest(p, 0, n)
        else:
            self._windowed(p)
        self._sweep(int(p.t[-1]))

    def _fin(self, p: Prepared, a: int, b: int) -> np.ndarray:
        bt = p.batch
        return ((bt.tcp_flags[a:b] & _FIN_RST) != 0) & (bt.proto[a:b] == _TCP)

    def _windowed(self, p: Prepared) -> None:
        """Cut a batch that may fill the cache into windows with known evictions.

        A window either creates no more flows than the cache has free slots (nothing is
        evicted), or starts at a packet that needs an eviction and is cut short enough that the
        reference's victims are simply the m least recently used cached flows: no flow ends
        otherwise inside the window (no deadline passes, no FIN/RST before its last packet),
        and no victim's key shows up in it. Occupancy only grows by first packets of keys not
        in the cache: every other new flow replaces one that ended just before.
        """
        assert self.max_flows is not None
        n = len(p.batch)
        pos, look = 0, n
        while pos < n:
            self._sweep(int(p.t[pos]))
            end = min(n, pos + look)
            g = group(p.kmat[:, pos:end])
            gslot = self.table.lookup(g.key_bytes())
            newpos = np.sort(g.order[g.starts[gslot < 0]])
            free = self.max_flows - self.table.live
            if newpos.shape[0] <= free:
                self._ingest(p, pos, end, g, gslot)
                b = end
            else:
                if free > 0 or newpos[0] > 0:  # fill the free slots, or continue cached flows
                    b = pos + int(newpos[free] if free > 0 else newpos[0])
                else:
                    b = self._evict_window(p, pos, end, g, gslot, newpos)
                # Victims are not in the window, so its lookups still hold.
                self._ingest(p, pos, b, *g.prefix(b - pos, gslot))
            look = max(64, 2 * look if b == end else 2 * (b - pos))
            pos = b

    def _evict_window(self, p: Prepared, pos: int, end: int, g: Groups, gslot: np.ndarray,
                      newpos: np.ndarray) -> int:
        """End of the window starting at ``pos`` (a new flow, cache full); evicts its victims."""
        t = p.t[pos:end]
        b = end - pos
        timeouts = [x for x in (self.idle_us, self.active_us) if x]
        if timeouts:  # no flow created in the window can time out inside it
            b = min(b, int(np.searchsorted(t, t[0] + min(timeouts), side="right")))
        live = self.table.live_slots()
        if live.shape[0] and timeouts:  # no cached flow's deadline passes inside it
            b = min(b, int(np.searchsorted(t, int(self._deadlines(live).min()), side="right")))
        if self.natural:  # no flow ends on FIN/RST before the window's last packet
            fins = np.flatnonzero(self._fin(p, pos, end))
            if fins.shape[0]:
                b = min(b, int(fins[0]) + 1)
        # Only the oldest flows can be victims: at most one per new flow in the window.
        seq = self.table.state["seq"][live]
        k = min(live.shape[0], int(np.searchsorted(newpos, b)))
        if k < live.shape[0]:
            part = np.argpartition(seq, k - 1)[:k]
            lru = live[part[np.argsort(seq[part], kind="stable")]]
        else:
            lru = live[np.argsort(seq, kind="stable")]
        rank = np.full(self.table.cap, _NEVER, np.int64)
        rank[lru] = np.arange(lru.shape[0])
        sizes = np.diff(np.append(g.starts, g.order.shape[0]))
        pslot = np.empty(g.order.shape[0], np.int64)
        pslot[g.order] = np.repeat(gslot, sizes)
        prank = np.where(pslot >= 0, rank[pslot], _NEVER)
        while True:
            m = int(np.searchsorted(newpos, b))  # flows created = evictions (cache is full)
            if m > lru.shape[0]:  # more new flows than cached ones: a victim would be new
                b = int(newpos[lru.shape[0]])
                continue
            hit = np.flatnonzero(prank[:b] < m)
            if hit.shape[0] == 0:
                break
            b = int(hit[0])
        victims = lru[:m]
        self.expire(self.table.remove(victims), END_RESOURCES)
        return pos + b

    def _ingest(self, p: Prepared, a: int, b: int, g: Groups | None = None,
                gslot: np.ndarray | None = None) -> None:
        """Add packets ``a:b``; the caller guarantees the cache has room for the new flows.

        ``g``/``gslot``: the window's grouping and table lookup when the caller has them.
        """
        if g is None:
            g = group(p.kmat[:, a:b])
        m = b - a
        order, starts = g.order, g.starts
        ts = p.t[a:b][order]
        first = np.zeros(m, dtype=bool)
        first[starts] = True
        boundary = first.copy()
        fin_cause = np.zeros(m, dtype=bool)  # boundary because the previous packet had FIN/RST
        if self.idle_us and m > 1:
            boundary[1:] |= (ts[1:] - ts[:-1]) > self.idle_us
        fin_o = None
        if self.natural:
            fin_o = self._fin(p, a, b)[order]
            fin_cause[1:] = fin_o[:-1] & ~first[1:]
            boundary |= fin_cause

        # Cached flows of these keys: continue them, or end them if their deadline passed.
        gslot = self.table.lookup(g.key_bytes()) if gslot is None else gslot.copy()
        hit = np.flatnonzero(gslot >= 0)
        st = self.table.state
        if hit.shape[0]:
            s = gslot[hit]
            tf = ts[starts[hit]]
            old = np.zeros(hit.shape[0], dtype=bool)
            if self.idle_us:
                old |= tf - st["end"][s] > self.idle_us
            if self.active_us:
                old |= tf - st["start"][s] > self.active_us
            if old.any():
                c = self.table.remove(s[old])
                self.expire(c, self._time_reason(c["start"], c["end"]))
                gslot[hit[old]] = -1
        gid = np.cumsum(first) - 1  # group of each sorted packet
        cont = np.zeros(m, dtype=bool)  # sorted packet starts the continuation of a cached flow
        cont[starts[gslot >= 0]] = True

        seg = np.flatnonzero(boundary)
        start_t = self._seg_start(ts, seg, cont, gid, gslot)
        if self.active_us:
            seg_end = np.append(seg[1:], m)
            over = np.flatnonzero(ts[seg_end - 1] - start_t > self.active_us)
            if over.shape[0]:
                for k in over.tolist():
                    lo, hi, s0 = int(seg[k]), int(seg_end[k]), int(start_t[k])
                    while True:
                        j = lo + int(np.searchsorted(ts[lo:hi], s0 + self.active_us, "right"))
                        if j >= hi:
                            break
                        boundary[j] = True
                        lo, s0 = j, int(ts[j])
                seg = np.flatnonzero(boundary)
                start_t = self._seg_start(ts, seg, cont, gid, gslot)
        self._segments(p, a, order, ts, seg, start_t, first, fin_cause, fin_o, cont, gid, gslot)

    def _seg_start(self, ts: np.ndarray, seg: np.ndarray, cont: np.ndarray, gid: np.ndarray,
                   gslot: np.ndarray) -> np.ndarray:
        start_t = ts[seg].copy()
        c = cont[seg]
        if c.any():
            start_t[c] = self.table.state["start"][gslot[gid[seg[c]]]]
        return start_t

    def _segments(self, p: Prepared, a: int, order: np.ndarray, ts: np.ndarray,
                  seg: np.ndarray, start_t: np.ndarray, first: np.ndarray,
                  fin_cause: np.ndarray, fin_o: np.ndarray | None, cont: np.ndarray,
                  gid: np.ndarray, gslot: np.ndarray) -> None:
        """Reduce each run of packets to one flow; end, continue or store it."""
        m = order.shape[0]
        seg_end = np.append(seg[1:], m)
        c = reduce_runs(p, order + a, seg, ts)
        c["start"] = start_t
        is_cont = cont[seg]
        slot = np.where(is_cont, gslot[gid[seg]], -1)
        if is_cont.any():  # fold in what the cached flow already counted
            fold_cached(c, np.flatnonzero(is_cont), self.table, slot[is_cont])

        last_of_group = np.append(first[seg[1:]], True)
        reason = np.zeros(seg.shape[0], np.uint8)
        split = ~last_of_group  # the next run of the same key ended this one
        nxt = seg[1:][split[:-1]]
        reason[split] = np.where(fin_cause[nxt], END_OF_FLOW,
                                 self._time_reason(start_t[split], c["end"][split]))
        ended = split.copy()
        if fin_o is not None:
            fin_last = last_of_group & fin_o[seg_end - 1]
            reason[fin_last] = END_OF_FLOW
            ended |= fin_last

        self.stats.flows_created += int(np.count_nonzero(~is_cont))
        done = np.flatnonzero(ended)
        if done.shape[0]:
            self.expire({k: v[done] for k, v in c.items()}, reason[done])
            cs = slot[done]
            cs = cs[cs >= 0]
            if cs.shape[0]:
                self.table.remove(cs)
        keep = ~ended
        upd = np.flatnonzero(keep & is_cont)
        if upd.shape[0]:
            self.table.write(slot[upd], {k: v[upd] for k, v in c.items()})
        new = np.flatnonzero(keep & ~is_cont)
        if new.shape[0]:
            keys = key_rows(take_keys(p.kmat, order[seg[new]] + a))
            self.table.insert(keys, {k: v[new] for k, v in c.items()})

