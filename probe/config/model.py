"""Typed, frozen configuration: what the rest of the program reads.

Built by ``probe.config.load`` only after the document validated against the YANG modules and
the semantic checks passed, so every field here is known-good and every leafref is resolved to
the object it names (an Observation Point holds its Selection Process objects, a Selection
Process its Cache, a Cache its Exporting Processes). Names follow RFC 6728; units are RFC 6728's:
timeouts in seconds, time-based sampling in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Plain frozen dataclasses, not pydantic models: every ``flowprobe replay`` builds a Config, and
# importing pydantic and building its validators cost 0.17 s of start-up, a quarter of softflowd's
# whole run on the 1M-packet bench trace. Pydantic still checks every Config a file produces
# against these annotations (``check_types``, called by the loader), strictly: a value of the
# wrong type is a bug in ``build`` and stops the load.
_frozen = dataclass(frozen=True, slots=True, kw_only=True)
# Read by pydantic when it validates these dataclasses: instances are checked, not trusted, and
# nothing is coerced (a list where a tuple belongs is an error, not silently converted).
_PYDANTIC = {"revalidate_instances": "always", "strict": True}


class _Frozen:
    __slots__ = ()
    __pydantic_config__ = _PYDANTIC


# ---------------------------------------------------------------- Cache layout
@_frozen
class CacheField(_Frozen):
    """One field of a cache layout; ``ie_length`` is the length the Template declares."""

    name: str
    ie_id: int
    ie_name: str
    ie_length: int | None = None  # None: the IE's full length (variable-length: none metered)
    enterprise_number: int = 0
    is_flow_key: bool = False


@_frozen
class CacheLayout(_Frozen):
    fields: tuple[CacheField, ...]

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(f.ie_name for f in self.fields if f.is_flow_key)

    @property
    def nonkey_names(self) -> tuple[str, ...]:
        return tuple(f.ie_name for f in self.fields if not f.is_flow_key)


# ---------------------------------------------------------------- TLS
@_frozen
class Tls(_Frozen):
    """RFC 6728 transportLayerSecurity of a TCP exporter or collector, with flowprobe's files.

    Each name list left empty puts no condition: the remote endpoint is then accepted when a
    trusted authority signed its certificate. Names are as configured: DNs in RFC 4514 text
    (``CN=collector,O=Example``), FQDNs as domain names (a ``*.`` wildcard allowed in the
    certificate, RFC 6125).
    """

    certificate_file: str
    private_key_file: str | None = None  # None: the key is in certificate_file
    trusted_ca_file: str | None = None  # None: the system's trusted authorities
    local_ca_dns: tuple[str, ...] = ()  # who may have signed our certificate
    local_subject_dns: tuple[str, ...] = ()  # our certificate's subject is one of these
    local_subject_fqdns: tuple[str, ...] = ()  # our certificate names one of these
    remote_ca_dns: tuple[str, ...] = ()  # who may have signed the peer's certificate
    remote_subject_dns: tuple[str, ...] = ()  # the peer's subject is one of these
    remote_subject_fqdns: tuple[str, ...] = ()  # the peer's certificate names one of these


# ---------------------------------------------------------------- Exporting Process
@_frozen
class Destination(_Frozen):
    """An export destination (RFC 6728 udpExporter/tcpExporter/fileWriter).

    A fileWriter (``transport`` "file") has ``file_path`` and no address or port."""

    name: str
    transport: Literal["udp", "tcp", "file"]
    ipfix_version: Literal[5, 9, 10] = 10
    destination_address: str = ""
    destination_port: int = 4739
    file_path: str | None = None  # fileWriter: where the IPFIX File (RFC 5655) is written
    max_message_size: int = 65535  # fileWriter: flowprobe:maxMessageSize
    source_address: str | None = None
    tls: Tls | None = None  # tcpExporter over TLS (RFC 7011 §11.3)
    send_buffer_size: int | None = None
    rate_limit: int | None = None  # bytes per second, None = unpaced
    # UDP only (RFC 6728 defaults: 600 s; packets: unset = no packet-count refresh).
    max_packet_size: int | None = None
    template_refresh_timeout: int = 600
    options_template_refresh_timeout: int = 600
    template_refresh_packet: int | None = None
    options_template_refresh_packet: int | None = None


OptionsType = Literal[
    "meteringStatistics", "meteringReliability", "exportingReliability", "flowKeys",
    "selectionSequence", "selectionStatistics", "accuracy", "reducingRedundancy",
    "extendedTypeInformation",
]


@_frozen
class Options(_Frozen):
    name: str
    options_type: OptionsType
    options_timeout_ms: int = 0  # 0: send once per template refresh


@_frozen
class ExportingProcess(_Frozen):
    name: str
    export_mode: Literal["parallel", "loadBalancing", "fallback"] = "parallel"
    destinations: tuple[Destination, ...]
    options: tuple[Options, ...] = ()


# ---------------------------------------------------------------- Cache
@_frozen
class Cache(_Frozen):
    """A Cache (RFC 6728 §4.3). ``kind`` is the YANG choice case taken."""

    name: str
    kind: Literal["immediateCache", "timeoutCache", "naturalCache", "permanentCache"]
    max_flows: int | None = None  # None: unlimited
    active_timeout: int = 0  # seconds, 0 = never
    idle_timeout: int = 0  # seconds, 0 = never
    export_interval: int | None = None  # seconds (permanentCache)
    layout: CacheLayout
    exporting_processes: tuple[ExportingProcess, ...] = ()


# ---------------------------------------------------------------- Selection Process
@_frozen
class SelectAll(_Frozen):
    name: str
    method: Literal["selectAll"] = "selectAll"


@_frozen
class SampCountBased(_Frozen):
    name: str
    method: Literal["sampCountBased"] = "sampCountBased"
    packet_interval: int  # packets selected per period
    packet_space: int  # packets skipped after them


@_frozen
class SampTimeBased(_Frozen):
    name: str
    method: Literal["sampTimeBased"] = "sampTimeBased"
    time_interval: int  # microseconds selected per period
    time_space: int  # microseconds skipped after them


@_frozen
class SampRandOutOfN(_Frozen):
    name: str
    method: Literal["sampRandOutOfN"] = "sampRandOutOfN"
    size: int
    population: int
    seed: int | None = None


@_frozen
class SampUniProb(_Frozen):
    name: str
    method: Literal["sampUniProb"] = "sampUniProb"
    probability: float
    seed: int | None = None


@_frozen
class FilterMatch(_Frozen):
    """Property match (RFC 5475 §6.1): a packet is selected when its IE equals ``value``."""

    name: str
    method: Literal["filterMatch"] = "filterMatch"
    ie_id: int
    ie_name: str
    value: int | bytes  # integers, IPv4 and MAC addresses as numbers; IPv6 as 16 octets


@_frozen
class HashRange(_Frozen):
    name: str
    min: int
    max: int


HashFunction = Literal["BOB", "IPSX", "CRC"]
# The largest value each function returns (outputRangeMin is 0 for all three).
HASH_OUTPUT_MAX: dict[str, int] = {"BOB": 2**32 - 1, "IPSX": 2**16 - 1, "CRC": 2**32 - 1}


@_frozen
class FilterHash(_Frozen):
    """Hash-based filtering (RFC 5475 §6.2): a packet is selected when the hash of its
    invariant octets falls in one of ``ranges`` (inclusive, non-overlapping)."""

    name: str
    method: Literal["filterHash"] = "filterHash"
    hash_function: HashFunction = "BOB"
    initializer_value: int = 0
    ip_payload_offset: int = 0  # octets of IP payload skipped before the hashed ones
    ip_payload_size: int = 8  # octets of IP payload hashed (fewer if the packet has fewer)
    digest_output: bool = False  # the hash goes into packet reports as digestHashValue
    ranges: tuple[HashRange, ...]

    @property
    def output_range_max(self) -> int:
        return HASH_OUTPUT_MAX[self.hash_function]

    @property
    def share(self) -> float:
        """The configured selection fraction: selected hash values over all hash values."""
        return sum(r.max - r.min + 1 for r in self.ranges) / (self.output_range_max + 1)


Selector = (SelectAll | SampCountBased | SampTimeBased | SampRandOutOfN | SampUniProb
            | FilterMatch | FilterHash)


@_frozen
class SelectionProcess(_Frozen):
    name: str
    selectors: tuple[Selector, ...]  # applied in order
    cache: Cache | None = None


# ---------------------------------------------------------------- Observation Point
# flowprobe:tunnels leaves, each a tunnel kind an observation point may open
# (``probe.capture.tunnels`` says what each opens).
TUNNELS = ("gre", "vxlan", "geneve", "gtpU", "ipInIp", "ipv6InIp")


@_frozen
class ObservationPoint(_Frozen):
    name: str
    observation_domain_id: int
    if_names: tuple[str, ...] = ()
    direction: Literal["ingress", "egress", "both"] = "both"
    selection_processes: tuple[SelectionProcess, ...] = ()
    # flowprobe.yang augment
    offline_file: str | None = None
    promiscuous: bool = True
    snap_length: int = 65535
    bpf_filter: str | None = None
    max_observing_packets: int = 0  # 0 = unlimited
    tunnels: tuple[str, ...] = ()  # the TUNNELS switched on, in TUNNELS order


# ---------------------------------------------------------------- Collecting Process
@_frozen
class CollectorEndpoint(_Frozen):
    name: str
    transport: Literal["udp", "tcp"]
    local_addresses: tuple[str, ...] = ()  # empty: all addresses
    local_port: int = 4739
    tls: Tls | None = None  # tcpCollector over TLS


@_frozen
class CollectingProcess(_Frozen):
    name: str
    endpoints: tuple[CollectorEndpoint, ...]
    files: tuple[str, ...] = ()  # fileReader: IPFIX Files (RFC 5655) to read, as paths
    exporting_processes: tuple[ExportingProcess, ...] = ()


# ---------------------------------------------------------------- the whole document
@_frozen
class Config(_Frozen):
    source: str = "<built-in>"
    observation_points: tuple[ObservationPoint, ...] = ()
    selection_processes: tuple[SelectionProcess, ...] = ()
    caches: tuple[Cache, ...] = ()
    exporting_processes: tuple[ExportingProcess, ...] = ()
    collecting_processes: tuple[CollectingProcess, ...] = ()


def check_types(config: Config) -> Config:
    """``config`` if every value in it has its annotated type, else pydantic's ValidationError.

    Imported here, not at module level, so a run on the built-in config never loads pydantic.
    """
    from pydantic import TypeAdapter

    TypeAdapter(Config).validate_python(config)
    return config

