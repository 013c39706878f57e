"""Options records: what an exporter says about an observation domain, applied as it arrives.

Flow (data) records become columns (``probe.collect.flows``); an options record is rare and
changes the domain state the flow records after it are read with: the sampling rate (RFC 5476
IEs 305/306, 309/310; NetFlow v9 IEs 34/50, per selector or for the whole domain) and the
exporter's start time (``systemInitTimeMilliseconds``, for IPFIX sysUpTime fields).

The selector table is copied on write: a Data Set waiting for its column decode keeps the table
it was received under, so a later options record cannot change how it is read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from probe.collect.flows import SAMPLER_KEYS, Record
from probe.wire import DomainState

__all__ = ["Record", "apply_options", "sampling_rate_of"]


def sampling_rate_of(raw: dict[str, object]) -> int | None:
    """The 1-in-N rate an options record states (None: it states none)."""
    for name in ("samplingInterval", "samplerRandomInterval"):
        v = raw.get(name)
        if isinstance(v, int) and v > 0:
            return v
    interval, space = raw.get("samplingPacketInterval"), raw.get("samplingPacketSpace")
    if isinstance(interval, int) and isinstance(space, int) and interval > 0:
        return round((interval + space) / interval)
    size, pop = raw.get("samplingSize"), raw.get("samplingPopulation")
    if isinstance(size, int) and isinstance(pop, int) and size > 0:
        return round(pop / size)
    return None


def _sampler_key(raw: dict[str, object]) -> int | None:
    for name in SAMPLER_KEYS:
        v = raw.get(name)
        if isinstance(v, int):
            return v
    return None


def apply_options(ds: DomainState, raw: dict[str, object], max_samplers: int,
                  room: Callable[[], bool], dropped: Callable[[int], None]) -> None:
    """Remember what an options record says about the domain. A new selector entry needs
    ``room()`` (the session's memory budget); entries pushed out are reported to
    ``dropped``."""
    init = raw.get("systemInitTimeMilliseconds")
    if isinstance(init, int):
        ds.sys_init_ms = init
    rate = sampling_rate_of(raw)
    if rate is None:
        return
    key = _sampler_key(raw)
    if key is None:
        ds.sampling_rate = rate
        return
    if ds.samplers.get(key) == rate:
        return
    if key not in ds.samplers and not room():
        return
    table = OrderedDict(ds.samplers)  # copy on write: queued Data Sets keep the old one
    table[key] = rate
    table.move_to_end(key)
    gone = 0
    while len(table) > max_samplers:
        table.popitem(last=False)
        gone += 1
    if gone:
        dropped(gone)
    ds.samplers = table


def fallback_rate(ds: DomainState, header_sampling: int) -> int:
    """The rate of a flow record that names no selector the domain knows."""
    if ds.sampling_rate:
        return ds.sampling_rate
    if len(ds.samplers) == 1:  # one selector configured: it feeds every flow of the domain
        return next(iter(ds.samplers.values()))
    return header_sampling
