"""What ``flowprobe flows`` and ``flowprobe top`` show: the cached flows, biggest first.

The metering thread only copies the cached flows out (``Pipeline.cached_records``); sorting,
cutting to ``limit`` and turning rows into JSON-able dicts happen here, on the control
socket's thread, with numpy until the few rows asked for are known. A flow is written with the
collector's field names (goflow2's where one exists, as ``flowprobe replay`` and ``flowprobe
collect`` print them), plus what only a cached flow has: its age (now minus first seen), its
idle time (now minus last seen) and its rate.

The rate is the flow's bits per second since it was first seen (``bytes * 8 / age``, the age
counted as at least one second, so a flow a few milliseconds old is not a giant). The probe
keeps no per-flow history beyond the cache's own counters, so this is an average over the
flow's life, not over the last second.

A biflow (RFC 5103) counts both directions in ``bytes`` and ``packets``, as the cache's record
does, so a download sorts by what it moved; its ``reverse*`` fields say how much came back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from probe.cache.records import RecordBatch
from probe.collect.flows import GOFLOW_NAMES
from probe.collect.values import json_converter

SORTS = ("bytes", "packets", "rate", "age")
# Not written as fields: times and counters come from the record's own columns, and a cached
# flow has not ended.
_NOT_FIELDS = frozenset({
    "flowStartSeconds", "flowStartMilliseconds", "flowStartMicroseconds",
    "flowStartNanoseconds", "flowEndSeconds", "flowEndMilliseconds", "flowEndMicroseconds",
    "flowEndNanoseconds", "flowStartSysUpTime", "flowEndSysUpTime", "flowEndReason",
    *(ie for ie, goflow in GOFLOW_NAMES.items() if goflow in ("bytes", "packets")),
})
_ICMP = ("icmpTypeCodeIPv4", "icmpTypeCodeIPv6")
_ETYPE = {4: 0x0800, 6: 0x86DD}


def check_request(sort: object, limit: object) -> tuple[str, int | None]:
    """A flows request's sort and limit, or ValueError saying what is wrong with them."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit < 0):
        raise ValueError(f"limit must be a whole number (0: all), not {limit!r}")
    return str(sort), (limit or None)


def _rate_bps(octets: np.ndarray, age_us: np.ndarray) -> np.ndarray:
    return octets * 8e6 / np.maximum(age_us, 1_000_000)


def sort_value(flow: dict[str, Any], sort: str) -> float:
    """What a listed flow is sorted by (merging the lists of several capture workers)."""
    return float({"bytes": flow["bytes"], "packets": flow["packets"], "rate": flow["rate_bps"],
                  "age": flow["age_s"]}[sort])


def listing(now_us: int, batches: Iterable[RecordBatch], sort: str = "bytes",
            limit: int | None = None) -> dict[str, Any]:
    """``{"now_ns", "total", "sort", "flows"}``: the ``limit`` largest flows by ``sort``
    (all when None), largest first (``age``: oldest first)."""
    batches = [b for b in batches if len(b)]
    values, where = [], []
    for i, rb in enumerate(batches):
        c = rb.columns
        age_us = np.maximum(now_us - c["_start_us"], 0)
        values.append({"bytes": c["_octets"], "packets": c["_packets"], "age": age_us,
                       "rate": _rate_bps(c["_octets"], age_us)}[sort].astype(np.float64))
        where.append(np.stack([np.full(len(rb), i), np.arange(len(rb))], 1))
    total = sum(len(b) for b in batches)
    flows: list[dict[str, Any]] = []
    if total:
        v, w = np.concatenate(values), np.concatenate(where)
        order = np.argsort(-v, kind="stable")
        if limit is not None:
            order = order[:limit]
        chosen = w[order]
        # each batch's chosen rows converted at once, in the order they were chosen
        made = {i: iter(_flows(rb, chosen[chosen[:, 0] == i, 1], now_us))
                for i, rb in enumerate(batches)}
        flows = [next(made[i]) for i in chosen[:, 0].tolist()]
    return {"now_ns": now_us * 1000, "total": total, "sort": sort, "flows": flows}


def _flows(rb: RecordBatch, rows: np.ndarray, now_us: int) -> list[dict[str, Any]]:
    """Rows ``rows`` of ``rb`` as flow dicts, a column at a time."""
    c = rb.columns
    start, end = c["_start_us"][rows].tolist(), c["_end_us"][rows].tolist()
    octets, packets = c["_octets"][rows].tolist(), c["_packets"][rows].tolist()
    fields = []
    for f in rb.fields:
        if f.ie_name in _NOT_FIELDS:
            continue
        col = c[f.ie_name][rows]
        fields.append((f.ie_name, [bytes(x) for x in col] if col.ndim == 2 else col.tolist()))
    out = []
    for j in range(len(start)):
        age_us = max(now_us - start[j], 0)
        flow: dict[str, Any] = {
            "cache": rb.cache_name, "observation_domain_id": rb.observation_domain_id,
            "time_flow_start_ns": start[j] * 1000, "time_flow_end_ns": end[j] * 1000,
            "bytes": octets[j], "packets": packets[j],
            "age_s": round(age_us / 1e6, 3), "idle_s": round(max(now_us - end[j], 0) / 1e6, 3),
            "rate_bps": round(octets[j] * 8e6 / max(age_us, 1_000_000)),
            "etype": _ETYPE.get(rb.ip_version, 0),
        }
        for name, values in fields:
            v = values[j]
            if name in _ICMP:
                flow["icmp_type"], flow["icmp_code"] = v >> 8 & 0xFF, v & 0xFF
                continue
            target = GOFLOW_NAMES.get(name, name)
            flow[name if target in flow else target] = json_converter(name)(v)
        out.append(flow)
    return out


def merge(answers: Iterable[dict[str, Any]], sort: str, limit: int | None) -> dict[str, Any]:
    """The listings of several capture workers as one: their flows sorted together."""
    answers = list(answers)
    flows = sorted((f for a in answers for f in a["flows"]), key=lambda f: -sort_value(f, sort))
    return {"now_ns": max((a["now_ns"] for a in answers), default=0),
            "total": sum(a["total"] for a in answers), "sort": sort,
            "flows": flows[:limit] if limit else flows}
