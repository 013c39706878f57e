"""A one-line account of what a config declares, for ``flowprobe validate`` and run logs."""

from __future__ import annotations

import ipaddress

from probe.config.model import Cache, Config, Destination
from probe.config.semantic import VERSION_LABEL


def _n(count: int, noun: str) -> str:
    plural = noun[:-1] + "es" if noun.endswith("ss") else noun + "s"
    return f"{count} {noun if count == 1 else plural}"


def destination_url(dest: Destination) -> str:
    if dest.transport == "file":
        return f"file:{dest.file_path}"
    return _url("tls" if dest.tls else dest.transport, dest.destination_address,
                dest.destination_port)


def _cache(cache: Cache) -> str:
    fields = cache.layout.fields
    keys = sum(f.is_flow_key for f in fields)
    return f"{cache.kind}, {_n(len(fields), 'field')}, {_n(keys, 'key')}"


def _url(transport: str, host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{transport}://{host}:{port}"


def describe(config: Config) -> str:
    """Counts of each box and where records go; boxes a config does not use are left out."""
    parts = [_n(len(config.observation_points), "observation point")]
    sps = config.selection_processes
    methods = "; ".join(" + ".join(s.method for s in sp.selectors) for sp in sps)
    parts.append(_n(len(sps), "selection process") + (f" ({methods})" if sps else ""))
    caches = config.caches
    parts.append(_n(len(caches), "cache") + (f" ({'; '.join(map(_cache, caches))})"
                                             if caches else ""))
    eps = config.exporting_processes
    dests = [f"{destination_url(d)} {VERSION_LABEL[d.ipfix_version]}"
             for ep in eps for d in ep.destinations]
    parts.append(_n(len(eps), "exporting process") + (f" → {', '.join(dests)}" if dests else ""))
    cps = config.collecting_processes
    if cps:
        listens = [_url("tls" if e.tls else e.transport, addr, e.local_port)
                   for cp in cps for e in cp.endpoints
                   for addr in (e.local_addresses or ("*",))]
        listens += [f"file:{path}" for cp in cps for path in cp.files]
        parts.append(_n(len(cps), "collecting process") + f" ← {', '.join(listens)}")
    return ", ".join(p for p in parts if not p.startswith("0 "))
