"""How fast an offline run may send over UDP, where the collector cannot say "slow down".

A replay meters a capture far faster than it was recorded: the 500k-packet trace of issue #13
became 870 IPFIX messages in about 0.2 s, and an nfcapd with the kernel's default socket buffer
(208 KB, some 90 datagrams) dropped 0.1-43 % of them, with nothing on either side to say so.
Live capture is paced by the traffic itself, so only offline runs are paced by default, at a
rate measured on the development machine (README, "UDP pacing"); RFC 6728's ``rateLimit`` of a
destination and ``--rate`` change it, 0 turns pacing off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from probe.config.model import Cache, Config, Destination, ExportingProcess

# Bytes per second a UDP destination of an offline run gets when nothing else is configured.
DEFAULT_UDP_RATE = 5_000_000


def is_offline(config: Config) -> bool:
    """Every observation point reads a file (nothing paces the records but the meter)."""
    ops = config.observation_points
    return bool(ops) and all(op.offline_file for op in ops)


def paced(config: Config, rate: int | None = None) -> Config:
    """``config`` with each destination's rate limit as this run will use it.

    ``rate`` (``--rate``, bytes per second, 0 = unpaced) replaces every destination's
    ``rateLimit``. Without it, UDP destinations of an offline run that configure no
    ``rateLimit`` get DEFAULT_UDP_RATE; a configured one, 0 included, is kept.
    """
    offline = is_offline(config)
    if rate is None and not offline:
        return config

    def limit(d: Destination) -> Destination:
        if rate is not None:
            return replace(d, rate_limit=rate)
        if offline and d.transport == "udp" and d.rate_limit is None:
            return replace(d, rate_limit=DEFAULT_UDP_RATE)
        return d

    return map_destinations(config, limit)


def loader(rate: int | None) -> Callable[[str], Config]:
    """``load`` for a service's reloads: every config it runs is paced the same way."""
    def load(path: str) -> Config:
        from probe.config import load as load_config

        return paced(load_config(path), rate)
    return load


def map_destinations(config: Config, fn: Callable[[Destination], Destination]) -> Config:
    """The config with ``fn`` applied to every destination, every reference kept linked.

    Exporting processes are matched by identity, not name: ``replay -c CONFIG --export``
    adds one beside the config's own, and the two may share a name.
    """
    eps: dict[int, ExportingProcess] = {}

    def ep_of(ep: ExportingProcess) -> ExportingProcess:
        new = eps.get(id(ep))
        if new is None:
            new = eps[id(ep)] = replace(ep, destinations=tuple(fn(d) for d in ep.destinations))
        return new

    caches: dict[int, Cache] = {
        id(c): replace(c, exporting_processes=tuple(map(ep_of, c.exporting_processes)))
        for c in config.caches}

    def cache_of(c: Cache | None) -> Cache | None:
        if c is None:
            return None
        if id(c) not in caches:
            caches[id(c)] = replace(c, exporting_processes=tuple(map(ep_of,
                                                                     c.exporting_processes)))
        return caches[id(c)]

    sps = {id(sp): replace(sp, cache=cache_of(sp.cache)) for sp in config.selection_processes}
    ops = tuple(replace(op, selection_processes=tuple(
        sps.get(id(sp)) or replace(sp, cache=cache_of(sp.cache))
        for sp in op.selection_processes)) for op in config.observation_points)
    return replace(
        config, observation_points=ops, selection_processes=tuple(sps.values()),
        caches=tuple(caches[id(c)] for c in config.caches),
        exporting_processes=tuple(map(ep_of, config.exporting_processes)),
        collecting_processes=tuple(
            replace(cp, exporting_processes=tuple(map(ep_of, cp.exporting_processes)))
            for cp in config.collecting_processes))
