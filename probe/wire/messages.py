"""Message and set framing of IPFIX (RFC 7011 §3), NetFlow v9 (RFC 3954 §5) and NetFlow v5.

The headers' layouts, the set ids and the fixed NetFlow v5 record are written down once here:
the exporter packs with them and the collector unpacks with them.
"""

from __future__ import annotations

import struct

IPFIX_VERSION, V9_VERSION, V5_VERSION = 10, 9, 5

# version, length, export time, sequence number, observation domain id
IPFIX_HEADER = struct.Struct(">HHIII")
# version, count, sysUptime (ms), unix seconds, sequence number, source id
V9_HEADER = struct.Struct(">HHIIII")
# version, count, sysUptime (ms), unix seconds, unix nanoseconds, flow sequence, engine type,
# engine id, sampling (2 mode bits, 14 bits of interval)
V5_HEADER = struct.Struct(">HHIIIIBBH")

SET_HEADER = struct.Struct(">HH")  # set id, length (IPFIX: set; v9: FlowSet)
IPFIX_TEMPLATE_SET, IPFIX_OPTIONS_TEMPLATE_SET = 2, 3
V9_TEMPLATE_FLOWSET, V9_OPTIONS_TEMPLATE_FLOWSET = 0, 1
MIN_DATA_SET_ID = 256  # data sets carry their Template's id

# The NetFlow v5 record, in order: (field name, octets, the IE it carries; None: padding).
V5_FIELDS: tuple[tuple[str, int, str | None], ...] = (
    ("srcaddr", 4, "sourceIPv4Address"), ("dstaddr", 4, "destinationIPv4Address"),
    ("nexthop", 4, "ipNextHopIPv4Address"), ("input", 2, "ingressInterface"),
    ("output", 2, "egressInterface"), ("dPkts", 4, "packetDeltaCount"),
    ("dOctets", 4, "octetDeltaCount"), ("First", 4, "flowStartSysUpTime"),
    ("Last", 4, "flowEndSysUpTime"), ("srcport", 2, "sourceTransportPort"),
    ("dstport", 2, "destinationTransportPort"), ("pad1", 1, None),
    ("tcp_flags", 1, "tcpControlBits"), ("prot", 1, "protocolIdentifier"),
    ("tos", 1, "ipClassOfService"), ("src_as", 2, "bgpSourceAsNumber"),
    ("dst_as", 2, "bgpDestinationAsNumber"), ("src_mask", 1, "sourceIPv4PrefixLength"),
    ("dst_mask", 1, "destinationIPv4PrefixLength"), ("pad2", 2, None),
)
V5_RECORD = struct.Struct(">" + "".join({1: "B", 2: "H", 4: "I"}[n] if ie else "x" * n
                                        for _, n, ie in V5_FIELDS))
V5_IE_NAMES = tuple(ie for _, _, ie in V5_FIELDS if ie is not None)  # V5_RECORD's values
V5_RECORD_LEN = 48
V5_MAX_RECORDS = 30
assert V5_RECORD.size == V5_RECORD_LEN


def set_bytes(set_id: int, body: bytes, align: int = 1) -> bytes:
    """A set: its header and body, zero-padded to a multiple of ``align`` octets (NetFlow v9
    pads FlowSets to 32 bits, RFC 3954 §5.3; IPFIX needs no padding)."""
    pad = -(SET_HEADER.size + len(body)) % align
    return SET_HEADER.pack(set_id, SET_HEADER.size + len(body) + pad) + body + b"\0" * pad
