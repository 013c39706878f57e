"""The built-in configuration ``flowprobe replay`` uses without ``-c`` (design brief §3), and
``flowprobe run -i IFACE`` too.

All IP traffic, IPv4 and IPv6, keyed on the 5-tuple and the IP version. ICMP type and code are
keys too: every NetFlow probe (softflowd included) keeps ICMP messages of different types apart,
and a collector shows them in the destination port. Timeouts are softflowd-like: 300 s idle
(its UDP/ICMP default), 1800 s active.

``MeterOptions`` is what the command-line flags of both commands change in it, the way
softflowd's ``-T``, ``-s``, ``-t``, ``-m`` and ``-b`` do: the flow key level, 1-in-N sampling,
the timeouts, the cache size, a BPF filter and biflows. The result is an ordinary ``Config``, so
``--print-config`` can write it out as a file (``probe.config.dump``).
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.config.model import (
    Cache,
    CacheField,
    CacheLayout,
    Config,
    Destination,
    ExportingProcess,
    ObservationPoint,
    SampCountBased,
    SelectAll,
    SelectionProcess,
    Selector,
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

_ADDRESSES = ("sourceIPv4Address", "destinationIPv4Address", "sourceIPv6Address",
              "destinationIPv6Address")
# softflowd's -T levels: "full" the 5-tuple (ICMP type and code in place of ports), "proto"
# the addresses and protocol, "ip" the addresses alone; every level keeps IPv4 and IPv6 apart.
KEY_LEVELS: dict[str, tuple[str, ...]] = {
    "full": DEFAULT_KEYS,
    "proto": (*_ADDRESSES, "protocolIdentifier", "ipVersion"),
    "ip": (*_ADDRESSES, "ipVersion"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterOptions:
    """What ``--keys``, ``--sample``, ``--active``, ``--idle``, ``--max-flows`` and ``--bpf``
    change in the built-in config; the defaults leave it as it is."""

    keys: str = "full"  # a KEY_LEVELS name
    sample: int = 1  # 1 in N packets (count-based, as softflowd -s); 1 = every packet
    active_timeout: int = DEFAULT_ACTIVE_TIMEOUT  # seconds, 0 = never
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT  # seconds, 0 = never
    max_flows: int = DEFAULT_MAX_FLOWS
    bpf_filter: str | None = None
    biflow: bool = False  # both directions in one record (RFC 5103), as softflowd -b


# What --biflow adds: the initiator's direction and the answers' counters, flags and times.
BIFLOW_NONKEYS = ("biflowDirection", "reverseFlowStartMilliseconds",
                  "reverseFlowEndMilliseconds", "reverseOctetDeltaCount",
                  "reversePacketDeltaCount", "reverseTcpControlBits")


def default_layout(version: int = 10, keys: str = "full", biflow: bool = False) -> CacheLayout:
    """The default cache layout at a key level; for NetFlow v5 only what a v5 record can
    carry (a biflow layout goes to v5 and v9 as two one-way records)."""
    key_names = KEY_LEVELS[keys]
    fields = []
    for name in key_names + DEFAULT_NONKEYS + (BIFLOW_NONKEYS if biflow else ()):
        if version == 5 and name not in V5_CARRIABLE and name not in BIFLOW_NONKEYS:
            continue
        ie = by_name(name)
        assert ie is not None, name
        fields.append(CacheField(name=f"Field {len(fields) + 1}", ie_id=ie.id, ie_name=name,
                                 enterprise_number=ie.pen, is_flow_key=name in key_names))
    return CacheLayout(fields=tuple(fields))


def _selection(sample: int) -> tuple[str, tuple[Selector, ...]]:
    """(selection process name, selectors): all packets, or the first of every ``sample``."""
    if sample <= 1:
        return "All", (SelectAll(name="Select all"),)
    return "Sampled", (SampCountBased(name=f"1 in {sample}", packet_interval=1,
                                      packet_space=sample - 1),)


def default_config(
    offline_file: str | None = None,
    *,
    export: tuple[str, str, int] | None = None,
    version: int = 10,
    options: MeterOptions = MeterOptions(),
    interfaces: tuple[str, ...] = (),
) -> Config:
    """The built-in config: an observation point, select-all (or 1-in-N), one timeout cache.

    ``export`` is ``(transport, host, port)`` for one destination (``--export``; for a file,
    ``("file", path, 0)``), else the cache
    feeds no exporting process and the caller attaches its own (the in-process collector).
    ``interfaces``: live capture instead of ``offline_file``, one observation point per
    interface (an observation point captures on one), all feeding the one cache.
    """
    eps: tuple[ExportingProcess, ...] = ()
    if export is not None:
        transport, host, port = export
        if transport == "file":  # an IPFIX File: ``host`` is its path
            dest = Destination(name=f"file:{host}", transport="file", destination_port=0,
                               file_path=host)
        else:
            dest = Destination(name=f"{transport}://{host}:{port}", transport=transport,  # type: ignore[arg-type]
                               ipfix_version=version, destination_address=host,  # type: ignore[arg-type]
                               destination_port=port)
        eps = (ExportingProcess(name="export", destinations=(dest,)),)
    cache = Cache(name="Flow cache", kind="timeoutCache", max_flows=options.max_flows,
                  active_timeout=options.active_timeout, idle_timeout=options.idle_timeout,
                  layout=default_layout(version, options.keys, options.biflow),
                  exporting_processes=eps)
    sp_name, selectors = _selection(options.sample)
    sp = SelectionProcess(name=sp_name, selectors=selectors, cache=cache)
    if interfaces:
        ops = tuple(ObservationPoint(name=i, observation_domain_id=1, if_names=(i,),
                                     selection_processes=(sp,), bpf_filter=options.bpf_filter)
                    for i in interfaces)
    else:
        ops = (ObservationPoint(name="replay", observation_domain_id=1,
                                selection_processes=(sp,), offline_file=offline_file,
                                bpf_filter=options.bpf_filter),)
    return Config(observation_points=ops, selection_processes=(sp,), caches=(cache,),
                  exporting_processes=eps)
