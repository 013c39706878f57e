"""Synthetic PacketBatches and a packet-at-a-time reference meter for cache tests."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from probe.cache.records import RecordBatch
from probe.capture.batch import PacketBatch
from probe.config.defaults import default_layout
from probe.config.model import Cache


def packets(n: int, *, flows: int, seed: int = 0, span_us: int = 10_000_000,
            tcp_share: float = 0.5, fin_share: float = 0.0, v6_share: float = 0.0,
            ) -> PacketBatch:
    """``n`` packets of ``flows`` keys in time order, some TCP with FIN/RST, some IPv6."""
    rng = np.random.default_rng(seed)
    b = PacketBatch.empty(n)
    b.ts_us[:] = 1_700_000_000_000_000 + np.sort(rng.integers(0, span_us, n))
    key = rng.integers(0, flows, n)
    v6 = (key % 1000) < v6_share * 1000
    b.ip_version[:] = np.where(v6, 6, 4)
    b.src_addr[:, 0] = 10
    b.src_addr[:, 1:4] = np.stack([(key >> 16) & 255, (key >> 8) & 255, key & 255], 1)
    b.dst_addr[:, 0] = 192
    b.dst_addr[:, 3] = 1
    tcp = (key % 100) < tcp_share * 100
    b.proto[:] = np.where(tcp, 6, 17)
    b.src_port[:] = 1024 + key % 50000
    b.dst_port[:] = 80
    b.ttl[:] = rng.integers(1, 255, n)
    b.ip_len[:] = rng.integers(40, 1500, n)
    b.tcp_flags[:] = np.where(tcp, 0x10, 0)
    fin = tcp & (rng.random(n) < fin_share)
    b.tcp_flags[fin] |= rng.choice(np.array([0x01, 0x04], np.uint16), int(fin.sum()))
    return b


def split(b: PacketBatch, size: int) -> list[PacketBatch]:
    return [b.take(np.arange(i, min(i + size, len(b)))) for i in range(0, len(b), size)]


def cache_cfg(kind: str = "timeoutCache", *, max_flows: int | None = None, idle: int = 0,
              active: int = 0, interval: int | None = None) -> Cache:
    return Cache(name="c", kind=kind, max_flows=max_flows, idle_timeout=idle,  # type: ignore[arg-type]
                 active_timeout=active, export_interval=interval, layout=default_layout())


def record_set(batches: list[RecordBatch]) -> list[tuple]:
    """Records as sorted tuples of every column, so two runs compare exactly."""
    rows = []
    for rb in batches:
        cols = rb.columns
        names = sorted(cols)
        for i in range(len(rb)):
            rows.append(tuple((n, bytes(cols[n][i]) if cols[n].ndim == 2 else int(cols[n][i]))
                              for n in names))
    return sorted(rows)


def reference(b: PacketBatch, cfg: Cache, first_values: tuple[str, ...] = ()) -> list[tuple]:
    """The documented per-packet semantics, naively: (version, start, end, packets, octets,
    reason) per record, sorted. With ``first_values`` (IE names read from the packet columns
    ``_VALUE_COLUMN`` names), each record is instead (source port, start, end, packets,
    reason, *the values of the flow's first packet*), as ``summary_keyed`` gives them.

    Only for timeout/natural caches and the synthetic streams above (keys = 5-tuple + version).
    """
    idle, active = cfg.idle_timeout * 10**6, cfg.active_timeout * 10**6
    table: OrderedDict[tuple, list[int]] = OrderedDict()  # key -> [start, end, pk, oc]; LRU first
    out = []
    clock = None

    def reason(f: list[int]) -> int:
        if not idle:
            return 2
        if not active:
            return 1
        return 1 if f[1] + idle <= f[0] + active else 2

    def deadline(f: list[int]) -> float:
        d = float("inf")
        if idle:
            d = min(d, f[1] + idle)
        if active:
            d = min(d, f[0] + active)
        return d

    for i in range(len(b)):
        ts = int(b.ts_us[i])
        clock = ts if clock is None else max(clock, ts)
        for k in [k for k, f in table.items() if deadline(f) < clock]:
            f = table.pop(k)
            out.append((k, f[0], f[1], f[2], f[3], reason(f), f[4]))
        key = (int(b.ip_version[i]), bytes(b.src_addr[i]), bytes(b.dst_addr[i]), int(b.proto[i]),
               int(b.src_port[i]), int(b.dst_port[i]))
        if key not in table:
            if cfg.max_flows and len(table) >= cfg.max_flows:
                k, f = table.popitem(last=False)
                out.append((k, f[0], f[1], f[2], f[3], 5, f[4]))
            table[key] = [clock, clock, 0, 0, i]
        f = table[key]
        table.move_to_end(key)
        f[1] = clock
        f[2] += 1
        f[3] += int(b.ip_len[i])
        if cfg.kind == "naturalCache" and b.proto[i] == 6 and b.tcp_flags[i] & 5:
            table.pop(key)
            out.append((key, f[0], f[1], f[2], f[3], 3, f[4]))
    for k, f in table.items():
        out.append((k, f[0], f[1], f[2], f[3], 4, f[4]))
    if first_values:
        return sorted((k[4], f0, f1, pk, r,
                       *(int(getattr(b, _VALUE_COLUMN[n])[first]) for n in first_values))
                      for k, f0, f1, pk, _, r, first in out)
    return sorted((k[0], f0, f1, pk, oc, r) for k, f0, f1, pk, oc, r, _ in out)


# The packet column a first-packet value IE is read from (for the names tests use).
_VALUE_COLUMN = {"ipClassOfService": "tos", "vlanId": "vlan_id", "sourceMacAddress": "src_mac"}


def summary_keyed(rbs: list[RecordBatch], values: tuple[str, ...]) -> list[tuple]:
    """Records as ``reference(..., first_values=values)`` gives them."""
    rows = []
    for rb in rbs:
        c = rb.columns
        for i in range(len(rb)):
            rows.append((int(c["sourceTransportPort"][i]), int(c["_start_us"][i]),
                         int(c["_end_us"][i]), int(c["_packets"][i]), int(c["_end_reason"][i]),
                         *(int(c[n][i]) for n in values)))
    return sorted(rows)
