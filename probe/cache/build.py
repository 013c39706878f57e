"""Turn expired-flow chunks into RecordBatches, one per IP version, in the layout's order."""

from __future__ import annotations

import numpy as np

from probe.cache.records import RecordBatch, column_spec, uptime_ms
from probe.cache.table import Chunk
from probe.config import model
from probe.ie import IPV4_ONLY, IPV6_ONLY

# Time IEs: (which end of the flow, divisor from microseconds). sysUpTime ones are relative.
_TIMES: dict[str, tuple[str, int]] = {
    "flowStartSeconds": ("start", 1_000_000), "flowEndSeconds": ("end", 1_000_000),
    "flowStartMilliseconds": ("start", 1000), "flowEndMilliseconds": ("end", 1000),
    "flowStartMicroseconds": ("start", 1), "flowEndMicroseconds": ("end", 1),
}
_SYSUP = {"flowStartSysUpTime": "start", "flowEndSysUpTime": "end"}
_STATE_IE = {
    "octetDeltaCount": "octets", "packetDeltaCount": "packets",
    "octetTotalCount": "octets", "packetTotalCount": "packets", "tcpControlBits": "flags",
    "minimumTTL": "min_ttl", "maximumTTL": "max_ttl", "minimumIpTotalLength": "min_len",
    "maximumIpTotalLength": "max_len", "flowEndReason": "reason",
}


def concat_chunks(chunks: list[Chunk]) -> Chunk:
    if len(chunks) == 1:
        return chunks[0]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _column(name: str, c: Chunk, sys_init_us: int) -> np.ndarray:
    dtype, _ = column_spec(name)
    if name in _TIMES:
        which, div = _TIMES[name]
        return (c[which] // div).astype(dtype, copy=False)
    if name in _SYSUP:
        return uptime_ms(c[_SYSUP[name]], sys_init_us)
    if name in _STATE_IE:
        return c[_STATE_IE[name]].astype(dtype, copy=False)
    return c[name].astype(dtype, copy=False)


def layout_for(layout: model.CacheLayout, version: int) -> tuple[model.CacheField, ...]:
    other = IPV6_ONLY if version == 4 else IPV4_ONLY
    return tuple(f for f in layout.fields if f.ie_name not in other)


def record_batches(cache_name: str, layout: model.CacheLayout, domain_id: int,
                   sys_init_us: int, chunk: Chunk) -> list[RecordBatch]:
    out: list[RecordBatch] = []
    v4 = chunk["version"] == 4
    n4 = int(np.count_nonzero(v4))
    for version, mask, n in ((4, v4, n4), (6, ~v4, v4.shape[0] - n4)):
        if n == 0:
            continue
        # a batch of one family (the usual case) is taken as it is, not copied through a mask
        c = chunk if n == v4.shape[0] else {k: v[mask] for k, v in chunk.items()}
        fields = layout_for(layout, version)
        cols = {f.ie_name: _column(f.ie_name, c, sys_init_us) for f in fields}
        cols.update({  # the record's columns are never written to, so they may share memory
            "_start_us": c["start"].astype(np.int64, copy=False),
            "_end_us": c["end"].astype(np.int64, copy=False),
            "_end_reason": c["reason"].astype(np.uint8, copy=False),
            "_packets": c["packets"].astype(np.uint64, copy=False),
            "_octets": c["octets"].astype(np.uint64, copy=False),
        })
        out.append(RecordBatch(cache_name=cache_name, observation_domain_id=domain_id,
                               ip_version=version, fields=fields, columns=cols,
                               sys_init_us=sys_init_us))
    return out
