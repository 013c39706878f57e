"""RecordBatch: flow records expired by a Cache, as columns, the unit handed to exporters.

A Cache hands over one RecordBatch per (cache, IP version): its ``fields`` are the cache layout
with the other family's fields left out (``probe.ie.IPV4_ONLY``/``IPV6_ONLY``), so an exporter
derives exactly one Template per batch layout. Columns are keyed by IE name and hold plain
numbers; the wire encoding (NTP time stamps, reduced-size integers, byte order) is the
exporter's job. The ``_``-prefixed columns are always present whatever the layout, because
NetFlow v5 and v9 headers and sysUpTime-relative times need them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from probe.config.model import CacheField
from probe.ie import by_name

# Column dtype per IE abstract data type. Addresses: IPv4 as uint32 (numeric value), IPv6 as
# (n, 16) uint8, MAC as uint64 with the 48 bits in the low end. Times are integer counts in the
# IE's own unit since the Unix epoch (seconds, milliseconds or microseconds); sysUpTime fields
# are milliseconds since ``sys_init_us``.
_DTYPE: dict[str, tuple[str, tuple[int, ...]]] = {
    "unsigned8": ("uint8", ()), "unsigned16": ("uint16", ()), "unsigned32": ("uint32", ()),
    "unsigned64": ("uint64", ()), "ipv4Address": ("uint32", ()), "ipv6Address": ("uint8", (16,)),
    "macAddress": ("uint64", ()), "dateTimeSeconds": ("uint32", ()),
    "dateTimeMilliseconds": ("uint64", ()), "dateTimeMicroseconds": ("uint64", ()),
    "dateTimeNanoseconds": ("uint64", ()),
    "octetArray": ("uint8", (0,)),  # a packet section: its row is the field's length
}

# Always-present columns.
META_COLUMNS: dict[str, str] = {
    "_start_us": "int64",  # first packet's time, microseconds since the epoch
    "_end_us": "int64",  # last packet's time
    "_end_reason": "uint8",  # RFC 7012 flowEndReason: 1 idle 2 active 3 end 4 forced 5 resources
    "_packets": "uint64",  # packets in this record (delta for timeout caches)
    "_octets": "uint64",  # IP total length summed
}


def uptime_ms(times_us: np.ndarray, sys_init_us: int) -> np.ndarray:
    """sysUpTime milliseconds of packet times, as NetFlow v5/v9 and IPFIX carry them.

    On the millisecond grid of the export headers (``t_ms - init_ms``, not ``(t - init)_ms``),
    so a collector's boot time plus uptime lands exactly on the packet's millisecond; 32 bits,
    wrapping as the wire field does after 49.7 days. The cache's column and every encoder use
    this one function, so ``--verify`` compares like with like.
    """
    ms = times_us.astype(np.int64) // 1000 - sys_init_us // 1000
    return (ms & 0xFFFFFFFF).astype(np.uint32)


def column_spec(ie_name: str) -> tuple[str, tuple[int, ...]]:
    """dtype and per-row shape of the column holding IE ``ie_name``."""
    ie = by_name(ie_name)
    if ie is not None and ie.data_type == "octetArray" and ie.length:
        return ("uint8", (ie.length,))  # an octetArray of defined size (MPLS label sections)
    if ie is None or ie.data_type not in _DTYPE:
        raise KeyError(f"no column type for IE {ie_name!r}")
    return _DTYPE[ie.data_type]


class OneWay(Protocol):
    """Biflow records as one-way records (``probe.cache.build``)."""

    def __call__(self) -> list[RecordBatch]: ...
    def slice(self, a: int, b: int) -> OneWay: ...


@dataclass(frozen=True, slots=True)
class RecordBatch:
    cache_name: str
    observation_domain_id: int
    ip_version: int  # 4 or 6
    fields: tuple[CacheField, ...]  # layout for this IP version, in configured order
    columns: dict[str, np.ndarray]  # IE name or META_COLUMNS name -> array of len(self)
    sys_init_us: int  # the probe's start on the packet clock (offline: first packet's time)
    # Biflow records (RFC 5103): the same flows as two batches of one-way records, initiator's
    # first, for a protocol that has no reverse IEs (NetFlow v5 and v9); None otherwise.
    split: OneWay | None = None

    def slice(self, a: int, b: int) -> RecordBatch:
        """Records ``a:b``."""
        return replace(self, columns={k: v[a:b] for k, v in self.columns.items()},
                       split=None if self.split is None else self.split.slice(a, b))

    def __len__(self) -> int:
        return int(self.columns["_start_us"].shape[0])

    def rows(self) -> list[dict[str, object]]:
        """Records as dicts of Python values (tests and verification, not the hot path)."""
        out: list[dict[str, object]] = []
        names = [f.ie_name for f in self.fields]
        cols = [self.columns[n] for n in names]
        for i in range(len(self)):
            row: dict[str, object] = {}
            for name, col in zip(names, cols, strict=True):
                v = col[i]
                row[name] = bytes(v) if col.ndim == 2 else int(v)
            out.append(row)
        return out
