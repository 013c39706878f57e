"""RecordBatches for export tests, built the way the Cache hands them over (columns by IE name).

Values are random but reproducible, with sub-millisecond packet times so the tests notice any
rounding between the records and the NetFlow headers' clocks.
"""

from __future__ import annotations

import numpy as np

from probe.cache.records import META_COLUMNS, RecordBatch, column_spec
from probe.config.defaults import default_layout
from probe.config.model import CacheField, CacheLayout
from probe.ie import IPV4_ONLY, IPV6_ONLY, by_name

SYS_INIT_US = 1_700_000_000_123_456  # offline: the first packet's time


def layout(names: tuple[str, ...], keys: int = 0, lengths: dict[str, int] | None = None
           ) -> CacheLayout:
    fields = []
    for i, n in enumerate(names):
        ie = by_name(n)
        assert ie is not None, n
        fields.append(CacheField(name=f"f{i}", ie_id=ie.id, ie_name=n, is_flow_key=i < keys,
                                 ie_length=(lengths or {}).get(n)))
    return CacheLayout(fields=tuple(fields))


def batch(n: int, ip_version: int = 4, *, cache_layout: CacheLayout | None = None,
          domain: int = 1, seed: int = 1, sys_init_us: int = SYS_INIT_US,
          offset_us: int = 0) -> RecordBatch:
    """``n`` flow records of one IP version with every column the layout names."""
    lay = cache_layout or default_layout(10)
    other = IPV6_ONLY if ip_version == 4 else IPV4_ONLY
    fields = tuple(f for f in lay.fields if f.ie_name not in other)
    rng = np.random.default_rng(seed)
    start = sys_init_us + offset_us + rng.integers(0, 60_000_000, n)
    end = start + rng.integers(0, 30_000_000, n)
    packets = rng.integers(1, 5000, n).astype(np.uint64)
    octets = packets * rng.integers(40, 1500, n).astype(np.uint64)
    proto = rng.choice(np.array([6, 17, 1 if ip_version == 4 else 58], dtype=np.uint8), n)
    cols: dict[str, np.ndarray] = {
        "_start_us": start.astype(np.int64), "_end_us": end.astype(np.int64),
        "_end_reason": rng.integers(1, 4, n).astype(np.uint8),
        "_packets": packets, "_octets": octets,
    }
    icmp = proto == (1 if ip_version == 4 else 58)
    for f in fields:
        name = f.ie_name
        dtype, shape = column_spec(name)
        ie = by_name(name)
        assert ie is not None
        if name in ("flowStartMilliseconds",):
            v = start // 1000
        elif name == "flowEndMilliseconds":
            v = end // 1000
        elif name == "flowStartSeconds":
            v = start // 1_000_000
        elif name == "flowEndSeconds":
            v = end // 1_000_000
        elif name == "flowStartMicroseconds":
            v = start
        elif name == "flowEndMicroseconds":
            v = end
        elif name == "flowStartSysUpTime":
            v = start // 1000 - sys_init_us // 1000
        elif name == "flowEndSysUpTime":
            v = end // 1000 - sys_init_us // 1000
        elif name == "packetDeltaCount":
            v = packets
        elif name == "octetDeltaCount":
            v = octets
        elif name == "protocolIdentifier":
            v = proto
        elif name == "ipVersion":
            v = np.full(n, ip_version)
        elif name == "flowEndReason":
            v = cols["_end_reason"]
        elif name == "tcpControlBits":
            v = np.where(proto == 6, rng.integers(0, 64, n), 0)
        elif name in ("sourceTransportPort", "destinationTransportPort"):
            v = np.where(icmp, 0, rng.integers(1, 65536, n))
        elif name.startswith("icmpTypeCode"):
            v = np.where(icmp, rng.integers(0, 20, n) * 256 + rng.integers(0, 4, n), 0)
        elif shape:
            v = rng.integers(0, 256, (n, *shape))
            v[:, 0] = 0x20  # global unicast 2000::/3
        elif name.endswith("IPv4Address"):
            v = rng.integers(0x0A000000, 0xDF000000, n)
        else:
            bits = 8 * np.dtype(dtype).itemsize
            v = rng.integers(0, 1 << min(bits, 48), n)
        cols[name] = np.asarray(v).astype(dtype)
    for m, dt in META_COLUMNS.items():
        cols[m] = cols[m].astype(dt)
    return RecordBatch(cache_name="test", observation_domain_id=domain, ip_version=ip_version,
                       fields=fields, columns=cols, sys_init_us=sys_init_us)
