"""Turn expired-flow chunks into RecordBatches, one per IP version, in the layout's order."""

from __future__ import annotations

import numpy as np

from probe.cache.records import RecordBatch, column_spec, uptime_ms
from probe.cache.table import Chunk
from probe.config import model
from probe.ie import BIFLOW_IES, IPV4_ONLY, IPV6_ONLY, REVERSE_IES, SWAPPED_KEYS

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


# A biflow's reverse direction read as a one-way flow: chunk field -> its reverse field.
_REVERSE_STATE = {"start": "rstart", "end": "rend", "packets": "rpackets", "octets": "roctets",
                  "flags": "rflags"}


def _reverse(c: Chunk) -> Chunk:
    """The reverse direction of biflows as one-way flows: the reverse times, counters and
    flags, sources and destinations swapped; times 0 where the reverse saw no packet."""
    out = dict(c)
    for fwd, rev in _REVERSE_STATE.items():
        out[fwd] = c[rev]
    for one, other in SWAPPED_KEYS:
        if one in c and other in c:
            out[one], out[other] = c[other], c[one]
    return out


def _column(name: str, c: Chunk, sys_init_us: int) -> np.ndarray:
    if name in REVERSE_IES:
        forward = name[len("reverse"):]
        col = _column(forward[0].lower() + forward[1:], _reverse(c), sys_init_us)
        if name.startswith("reverseFlow"):  # no reverse packet: no reverse time
            col = np.where(c["rpackets"] > 0, col, 0).astype(col.dtype, copy=False)
        return col
    if name == "biflowDirection":
        return np.ones(c["start"].shape[0], np.uint8)  # 1 initiator: its first packet's source
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
        out.append(_batch(cache_name, layout_for(layout, version), domain_id, version,
                          sys_init_us, c))
    return out


def _batch(cache_name: str, fields: tuple[model.CacheField, ...], domain_id: int, version: int,
           sys_init_us: int, c: Chunk) -> RecordBatch:
    cols = {f.ie_name: _column(f.ie_name, c, sys_init_us) for f in fields}
    split: _OneWay | None = None
    packets, octets, end = c["packets"], c["octets"], c["end"]
    if "rpackets" in c:  # a biflow: the meta columns count both directions
        packets, octets = packets + c["rpackets"], octets + c["roctets"]
        end = c["last"]
        split = _OneWay(cache_name, fields, domain_id, version, sys_init_us, c)
    cols.update({  # the record's columns are never written to, so they may share memory
        "_start_us": c["start"].astype(np.int64, copy=False),
        "_end_us": end.astype(np.int64, copy=False),
        "_end_reason": c["reason"].astype(np.uint8, copy=False),
        "_packets": packets.astype(np.uint64, copy=False),
        "_octets": octets.astype(np.uint64, copy=False),
    })
    return RecordBatch(cache_name=cache_name, observation_domain_id=domain_id,
                       ip_version=version, fields=fields, columns=cols,
                       sys_init_us=sys_init_us, split=split)


class _OneWay:
    """Biflows as one-way records, made when a NetFlow v5/v9 destination asks: the initiator's
    direction, then the answers (only where there were any), each in the layout without its
    biflow IEs."""

    def __init__(self, cache_name: str, fields: tuple[model.CacheField, ...], domain_id: int,
                 version: int, sys_init_us: int, c: Chunk) -> None:
        self.args = (cache_name, tuple(f for f in fields if f.ie_name not in BIFLOW_IES),
                     domain_id, version, sys_init_us)
        self.c = c

    def __call__(self) -> list[RecordBatch]:
        c = self.c
        forward = {k: v for k, v in c.items() if k not in _BIFLOW_STATE}
        answered = np.flatnonzero(c["rpackets"] > 0)
        reverse = {k: v[answered] for k, v in _reverse(c).items() if k not in _BIFLOW_STATE}
        name, fields, domain_id, version, sys_init_us = self.args
        return [_batch(name, fields, domain_id, version, sys_init_us, part)
                for part in (forward, reverse) if part["start"].shape[0]]

    def slice(self, a: int, b: int) -> _OneWay:
        part = _OneWay.__new__(_OneWay)
        part.args, part.c = self.args, {k: v[a:b] for k, v in self.c.items()}
        return part


_BIFLOW_STATE = frozenset({"init", "last", *(_REVERSE_STATE.values())})
