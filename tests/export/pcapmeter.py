"""A deliberately simple packet-at-a-time meter (dpkt) for export tests that start from a pcap.

It keeps every flow for the whole file (no timeouts), which is what the default cache does on
a short capture, and hands out RecordBatches in the default layout, so exporter tests can run
on real packet times before — and independently of — the vectorised Cache.
"""

from __future__ import annotations

from pathlib import Path

import dpkt
import numpy as np

from probe.cache.records import META_COLUMNS, RecordBatch, column_spec
from probe.config.defaults import default_layout
from probe.ie import IPV4_ONLY, IPV6_ONLY

Key = tuple[int, bytes, bytes, int, int, int, int]  # version, src, dst, proto, sport, dport, icmp


def meter(path: Path) -> dict[Key, list[int]]:
    """Flow key -> [first_us, last_us, packets, octets (IP total length), tcp flags]."""
    flows: dict[Key, list[int]] = {}
    with path.open("rb") as f:
        for ts, frame in dpkt.pcap.Reader(f):
            us = round(ts * 1_000_000)
            eth = dpkt.ethernet.Ethernet(frame)
            ip = eth.data
            if isinstance(ip, dpkt.ip.IP):
                ver, length = 4, ip.len
            elif isinstance(ip, dpkt.ip6.IP6):
                ver, length = 6, ip.plen + 40
            else:
                continue
            proto = ip.p if ver == 4 else ip.nxt
            l4 = ip.data
            sport = dport = icmp = flags = 0
            if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
                sport, dport = l4.sport, l4.dport
                flags = l4.flags if isinstance(l4, dpkt.tcp.TCP) else 0
            elif isinstance(l4, dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
                icmp = l4.type * 256 + l4.code
            key = (ver, bytes(ip.src), bytes(ip.dst), proto, sport, dport, icmp)
            f_ = flows.get(key)
            if f_ is None:
                flows[key] = [us, us, 1, length, flags]
            else:
                f_[1] = us
                f_[2] += 1
                f_[3] += length
                f_[4] |= flags
    return flows


def record_batches(flows: dict[Key, list[int]], sys_init_us: int,
                   domain: int = 1) -> list[RecordBatch]:
    out = []
    for ver in (4, 6):
        items = [(k, v) for k, v in flows.items() if k[0] == ver]
        if not items:
            continue
        other = IPV6_ONLY if ver == 4 else IPV4_ONLY
        fields = tuple(f for f in default_layout(10).fields if f.ie_name not in other)
        start = np.array([v[0] for _, v in items], dtype=np.int64)
        end = np.array([v[1] for _, v in items], dtype=np.int64)
        values = {
            "protocolIdentifier": [k[3] for k, _ in items],
            "sourceTransportPort": [k[4] for k, _ in items],
            "destinationTransportPort": [k[5] for k, _ in items],
            "icmpTypeCodeIPv4": [k[6] for k, _ in items],
            "icmpTypeCodeIPv6": [k[6] for k, _ in items],
            "ipVersion": [ver] * len(items),
            "flowStartMilliseconds": start // 1000, "flowEndMilliseconds": end // 1000,
            "octetDeltaCount": [v[3] for _, v in items],
            "packetDeltaCount": [v[2] for _, v in items],
            "tcpControlBits": [v[4] for _, v in items],
            "flowEndReason": [3] * len(items),
        }
        if ver == 4:
            values["sourceIPv4Address"] = [int.from_bytes(k[1], "big") for k, _ in items]
            values["destinationIPv4Address"] = [int.from_bytes(k[2], "big") for k, _ in items]
        else:
            values["sourceIPv6Address"] = [list(k[1]) for k, _ in items]
            values["destinationIPv6Address"] = [list(k[2]) for k, _ in items]
        cols = {f.ie_name: np.array(values[f.ie_name], dtype=column_spec(f.ie_name)[0])
                for f in fields}
        meta = {"_start_us": start, "_end_us": end,
                "_end_reason": np.full(len(items), 3), "_packets": values["packetDeltaCount"],
                "_octets": values["octetDeltaCount"]}
        cols.update({k: np.asarray(v, dtype=META_COLUMNS[k]) for k, v in meta.items()})
        out.append(RecordBatch("pcap", domain, ver, fields, cols, sys_init_us))
    return out
