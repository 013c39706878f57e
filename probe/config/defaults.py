"""The built-in configuration ``flowprobe replay`` uses without ``-c`` (design brief §3).

All IP traffic, IPv4 and IPv6, keyed on the 5-tuple and the IP version. ICMP type and code are
keys too: every NetFlow probe (softflowd included) keeps ICMP messages of different types apart,
and a collector shows them in the destination port. Timeouts are softflowd-like: 300 s idle
(its UDP/ICMP default), 1800 s active.
"""

from __future__ import annotations

from probe.config.model import (
    Cache,
    CacheField,
    CacheLayout,
    Config,
    Destination,
    ExportingProcess,
    ObservationPoint,
    SelectAll,
    SelectionProcess,
)
from probe.ie import V5_CARRIABLE, by_name

DEFAULT_KEYS = (
    "sourceIPv4Address", "destinationIPv4Address", "sourceIPv6Address", "destinationIPv6Address",
    "protocolIdentifier", "sourceTransportPort", "destinationTransportPort",
    "icmpTypeCodeIPv4", "icmpTypeCodeIPv6", "ipVersion",
)
DEFAULT_NONKEYS = (
    "flowStartMilliseconds", "flowEndMilliseconds", "octetDeltaCount", "packetDeltaCount",
    "tcpControlBits", "flowEndReason",
)
DEFAULT_MAX_FLOWS = 65536
DEFAULT_ACTIVE_TIMEOUT = 1800
DEFAULT_IDLE_TIMEOUT = 300


def default_layout(version: int = 10) -> CacheLayout:
    """The default cache layout; for NetFlow v5 only what a v5 record can carry."""
    fields = []
    for i, name in enumerate(DEFAULT_KEYS + DEFAULT_NONKEYS, start=1):
        if version == 5 and name not in V5_CARRIABLE:
            continue
        ie = by_name(name)
        assert ie is not None, name
        fields.append(CacheField(name=f"Field {i}", ie_id=ie.id, ie_name=name,
                                 is_flow_key=name in DEFAULT_KEYS))
    return CacheLayout(fields=tuple(fields))


def default_config(
    offline_file: str | None = None,
    *,
    export: tuple[str, str, int] | None = None,
    version: int = 10,
) -> Config:
    """The built-in config: one observation point, select-all, one timeout cache.

    ``export`` is ``(transport, host, port)`` for one destination (``--export``), else the cache
    feeds no exporting process and the caller attaches its own (the in-process collector).
    """
    eps: tuple[ExportingProcess, ...] = ()
    if export is not None:
        transport, host, port = export
        dest = Destination(name=f"{transport}://{host}:{port}", transport=transport,  # type: ignore[arg-type]
                           ipfix_version=version, destination_address=host,  # type: ignore[arg-type]
                           destination_port=port)
        eps = (ExportingProcess(name="export", destinations=(dest,)),)
    cache = Cache(name="Flow cache", kind="timeoutCache", max_flows=DEFAULT_MAX_FLOWS,
                  active_timeout=DEFAULT_ACTIVE_TIMEOUT, idle_timeout=DEFAULT_IDLE_TIMEOUT,
                  layout=default_layout(version), exporting_processes=eps)
    sp = SelectionProcess(name="All", selectors=(SelectAll(name="Select all"),), cache=cache)
    op = ObservationPoint(name="replay", observation_domain_id=1, selection_processes=(sp,),
                          offline_file=offline_file)
    return Config(observation_points=(op,), selection_processes=(sp,), caches=(cache,),
                  exporting_processes=eps)
