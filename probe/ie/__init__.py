"""Information Element registry: the IANA table plus what flowprobe's meter can fill.

Every box reads IE facts from here, so the config checks, the cache, the exporters' templates
and the collector's decoders agree on ids, types and lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from probe.ie.enterprise import ENTERPRISE_ELEMENTS, FIXED_LENGTH
from probe.ie.iana import ELEMENTS, REGISTRY_UPDATED

__all__ = [
    "BIFLOW_IES",
    "CUMULATIVE_COUNTERS",
    "DELTA_COUNTERS",
    "ENTERPRISE_ELEMENTS",
    "IPV4_ONLY",
    "IPV6_ONLY",
    "METERED",
    "METERED_KEYS",
    "METERED_NONKEYS",
    "MPLS_LABEL_SECTIONS",
    "NTP_EPOCH_OFFSET",
    "PACKET_REPORT",
    "PACKET_SECTIONS",
    "REGISTRY_UPDATED",
    "REVERSE_IES",
    "REVERSE_PEN",
    "SWAPPED_KEYS",
    "TUNNEL_ELEMENTS",
    "V5_CARRIABLE",
    "InformationElement",
    "by_id",
    "by_name",
]

# Default (full) encoded length of each abstract data type (RFC 7011 §6.1); None = variable.
_DEFAULT_LENGTH: dict[str, int | None] = {
    "unsigned8": 1, "unsigned16": 2, "unsigned32": 4, "unsigned64": 8,
    "signed8": 1, "signed16": 2, "signed32": 4, "signed64": 8,
    "float32": 4, "float64": 8, "boolean": 1, "macAddress": 6,
    "ipv4Address": 4, "ipv6Address": 16,
    "dateTimeSeconds": 4, "dateTimeMilliseconds": 8,
    "dateTimeMicroseconds": 8, "dateTimeNanoseconds": 8,
    "octetArray": None, "string": None,
    "basicList": None, "subTemplateList": None, "subTemplateMultiList": None,
}

# dateTimeMicroseconds/Nanoseconds are NTP time stamps (RFC 7011 §6.1.9): seconds from
# 1900-01-01 (NTP era 0) to the Unix epoch.
NTP_EPOCH_OFFSET = 2_208_988_800

# Types whose length may be reduced on the wire (RFC 7011 §6.2).
_REDUCIBLE = {"unsigned16", "unsigned32", "unsigned64", "signed16", "signed32", "signed64",
              "float64"}


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One IE: what a Template needs (id, enterprise, length) and what a decoder needs (type).
    ``pen`` is 0 for IANA's, else the enterprise number of an enterprise-specific IE."""

    id: int
    name: str
    data_type: str
    semantics: str
    units: str
    status: str
    pen: int = 0

    @property
    def length(self) -> int | None:
        """Full encoded length in octets, or None for variable-length types (an octetArray the
        IE's definition gives a size, as the MPLS label stack sections, has that length)."""
        return _DEFAULT_LENGTH.get(self.data_type) or FIXED_LENGTH.get(self.name)

    def allowed_lengths(self) -> tuple[int, ...]:
        """Lengths a Template may declare for this IE (reduced-size encoding, RFC 7011 §6.2)."""
        full = self.length
        if full is None:
            return ()
        if self.data_type not in _REDUCIBLE:
            return (full,)
        if self.data_type == "float64":
            return (4, 8)
        return tuple(n for n in range(1, full + 1))


@cache
def _tables() -> tuple[dict[str, InformationElement], dict[tuple[int, int], InformationElement]]:
    names: dict[str, InformationElement] = {}
    ids: dict[tuple[int, int], InformationElement] = {}
    for row in ELEMENTS:
        ie = InformationElement(*row)
        names[ie.name] = ie
        ids[(0, ie.id)] = ie
    for pen, *row in ENTERPRISE_ELEMENTS:
        ie = InformationElement(*row, pen=pen)  # type: ignore[arg-type]
        names[ie.name] = ie
        ids[(pen, ie.id)] = ie
    for name in REVERSIBLE:
        fwd = names[name]
        ie = InformationElement(fwd.id, reverse_name(name), fwd.data_type, fwd.semantics,
                                fwd.units, fwd.status, pen=REVERSE_PEN)
        names[ie.name] = ie
        ids[(REVERSE_PEN, ie.id)] = ie
    return names, ids


# RFC 5103 (biflows): the reverse direction of a biflow is exported in "reverse" IEs, each the
# IANA IE of the same id under private enterprise number 29305, named "reverse" + the IE's name
# with its first letter capitalised (reverseOctetDeltaCount is 29305/1). These are the ones
# flowprobe's biflow caches fill: the reverse direction's counters, TCP flags and times.
REVERSE_PEN = 29305
REVERSIBLE: tuple[str, ...] = (
    "octetDeltaCount", "packetDeltaCount", "octetTotalCount", "packetTotalCount",
    "tcpControlBits", "flowStartSysUpTime", "flowEndSysUpTime",
    "flowStartSeconds", "flowEndSeconds", "flowStartMilliseconds", "flowEndMilliseconds",
    "flowStartMicroseconds", "flowEndMicroseconds",
)


def reverse_name(name: str) -> str:
    return "reverse" + name[0].upper() + name[1:]


REVERSE_IES: frozenset[str] = frozenset(reverse_name(n) for n in REVERSIBLE)
# Key IEs that trade places when a packet goes the other way: a biflow cache keys on both.
SWAPPED_KEYS: tuple[tuple[str, str], ...] = (
    ("sourceIPv4Address", "destinationIPv4Address"),
    ("sourceIPv6Address", "destinationIPv6Address"),
    ("sourceTransportPort", "destinationTransportPort"),
    ("tcpSourcePort", "tcpDestinationPort"),
    ("udpSourcePort", "udpDestinationPort"),
    ("sourceMacAddress", "destinationMacAddress"),
)
# What makes a cache a biflow cache (RFC 5103): reverse IEs, or biflowDirection (IE 239).
BIFLOW_IES: frozenset[str] = REVERSE_IES | {"biflowDirection"}


def by_name(name: str) -> InformationElement | None:
    """The IE of that name, IANA's or one of the few enterprise IEs flowprobe knows (their
    names do not clash with IANA's)."""
    return _tables()[0].get(name)


def by_id(ie_id: int, pen: int = 0) -> InformationElement | None:
    """The IE with that id, IANA's (``pen`` 0) or that enterprise's."""
    return _tables()[1].get((pen, ie_id))


# The IEs flowprobe's meter can fill, by name. Flow keys: the 27 of goflowd's table plus
# destinationMacAddress (80, the RFC's name for what goflowd calls postDestinationMacAddress).
# Non-keys: counters, times (absolute and sysUpTime-relative), TTL and length extremes, flags
# and the end reason.
METERED_KEYS: frozenset[str] = frozenset({
    "protocolIdentifier", "ipClassOfService", "sourceTransportPort", "sourceIPv4Address",
    "destinationTransportPort", "destinationIPv4Address", "sourceIPv6Address",
    "destinationIPv6Address", "flowLabelIPv6", "icmpTypeCodeIPv4", "fragmentIdentification",
    "sourceMacAddress", "postDestinationMacAddress", "destinationMacAddress", "vlanId",
    "ipVersion", "icmpTypeCodeIPv6", "icmpTypeIPv4", "icmpCodeIPv4", "icmpTypeIPv6",
    "icmpCodeIPv6", "udpSourcePort", "udpDestinationPort", "tcpSourcePort",
    "tcpDestinationPort", "nextHeaderIPv6", "ipDiffServCodePoint", "ipPrecedence",
})
# MPLS (RFC 3032): each label stack entry's label, TC (Exp) and S bit, top first (IANA 70-79),
# and the top entry's TTL and TC on their own. Tunnels (``probe.capture.tunnels``): the outermost
# opened tunnel's id and outer header, in IANA's IEs where IANA has them (GRE key, VXLAN/NVGRE
# segment id) and ntop's enterprise IEs otherwise (``probe.ie.enterprise`` says why).
MPLS_LABEL_SECTIONS: tuple[str, ...] = ("mplsTopLabelStackSection", *(
    f"mplsLabelStackSection{i}" for i in range(2, 11)))
TUNNEL_ELEMENTS: frozenset[str] = frozenset({
    "greKey", "layer2SegmentId", "UPSTREAM_TUNNEL_ID", "UNTUNNELED_PROTOCOL",
    "UNTUNNELED_L4_DST_PORT", "UNTUNNELED_IPV4_SRC_ADDR", "UNTUNNELED_IPV4_DST_ADDR",
    "UNTUNNELED_IPV6_SRC_ADDR", "UNTUNNELED_IPV6_DST_ADDR",
})
METERED_KEYS = METERED_KEYS | frozenset(MPLS_LABEL_SECTIONS) | TUNNEL_ELEMENTS | frozenset({
    "mplsTopLabelTTL", "mplsTopLabelExp",
})
METERED_NONKEYS: frozenset[str] = frozenset({
    "octetDeltaCount", "packetDeltaCount", "octetTotalCount", "packetTotalCount",
    "tcpControlBits",
    "flowStartSysUpTime", "flowEndSysUpTime",
    "flowStartSeconds", "flowEndSeconds", "flowStartMilliseconds", "flowEndMilliseconds",
    "flowStartMicroseconds", "flowEndMicroseconds",
    "minimumTTL", "maximumTTL", "flowEndReason",
    "minimumIpTotalLength", "maximumIpTotalLength",
}) | BIFLOW_IES
# PSAMP packet reports (RFC 5476 §6.4, RFC 5477): what an immediateCache can say of each packet
# beside the flow fields: sections of its octets (``ieLength`` long, zero-padded past what the
# packet has, ``sectionExportedOctets`` saying how many are real), its frame's size, when it
# was observed, which selection sequence and selector selected it, and the hash a filterHash
# with digestOutput computed of it.
PACKET_SECTIONS: frozenset[str] = frozenset({
    "dataLinkFrameSection", "ipHeaderPacketSection", "ipPayloadPacketSection",
})
PACKET_REPORT: frozenset[str] = PACKET_SECTIONS | frozenset({
    "sectionExportedOctets", "dataLinkFrameSize", "observationTimeSeconds",
    "observationTimeMilliseconds", "observationTimeMicroseconds", "observationTimeNanoseconds",
    "selectorId", "selectionSequenceId", "digestHashValue",
})
# RFC 7012: a *DeltaCount counts since the previous report, a *TotalCount since the flow was
# first metered. A permanentCache reports each flow again and again with counters so far, so it
# carries the total counts; every other cache reports a flow once, so it carries the deltas.
CUMULATIVE_COUNTERS: frozenset[str] = frozenset({
    "octetTotalCount", "packetTotalCount", "reverseOctetTotalCount", "reversePacketTotalCount"})
DELTA_COUNTERS: frozenset[str] = frozenset({
    "octetDeltaCount", "packetDeltaCount", "reverseOctetDeltaCount", "reversePacketDeltaCount"})
# Any metered key IE may also be configured as a non-key field (its value from the first packet).
METERED: frozenset[str] = METERED_KEYS | METERED_NONKEYS | PACKET_REPORT

# Fields that exist only for one IP version: a Template for IPv4 flows leaves out the IPv6-only
# fields and the reverse, so no record carries zeroed addresses of the other family.
IPV4_ONLY: frozenset[str] = frozenset({
    "sourceIPv4Address", "destinationIPv4Address", "icmpTypeCodeIPv4", "icmpTypeIPv4",
    "icmpCodeIPv4",
})
IPV6_ONLY: frozenset[str] = frozenset({
    "sourceIPv6Address", "destinationIPv6Address", "flowLabelIPv6", "icmpTypeCodeIPv6",
    "icmpTypeIPv6", "icmpCodeIPv6", "nextHeaderIPv6",
})

# What a NetFlow v5 record can carry (v5 has a fixed 48-byte record). A cache layout with any
# other field cannot feed a v5 destination. IPv6 fields are allowed: IPv6 flows are counted as
# not exportable by the v5 exporter, as the design brief says.
V5_CARRIABLE: frozenset[str] = frozenset({
    "sourceIPv4Address", "destinationIPv4Address", "sourceTransportPort",
    "destinationTransportPort", "protocolIdentifier", "ipClassOfService", "tcpControlBits",
    "packetDeltaCount", "octetDeltaCount", "flowStartSysUpTime", "flowEndSysUpTime",
    "flowStartSeconds", "flowEndSeconds", "flowStartMilliseconds", "flowEndMilliseconds",
    "flowStartMicroseconds", "flowEndMicroseconds", "ipVersion", "icmpTypeCodeIPv4",
    "icmpTypeIPv4", "icmpCodeIPv4", "udpSourcePort", "udpDestinationPort", "tcpSourcePort",
    "tcpDestinationPort",
}) | IPV6_ONLY
