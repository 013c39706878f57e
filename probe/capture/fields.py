"""What each packet-level Information Element reads from a PacketBatch.

One function per packet-derived IE, all vectorised over a batch: the caches key flows and keep
first-packet values with them (``probe.cache.fields``), the filterMatch selector matches on
them. Values of the other IP family's IEs are zero.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from probe.branchless import keep
from probe.capture.batch import PacketBatch

ICMP4, ICMP6, _TCP, _UDP = 1, 58, 6, 17


def v4_address(col: np.ndarray, b: PacketBatch) -> np.ndarray:
    """IPv4 addresses as numbers from a 16-octet address column; 0 for IPv6 packets."""
    a = col[:, :4].astype(np.uint32)
    v = (a[:, 0] << 24) | (a[:, 1] << 16) | (a[:, 2] << 8) | a[:, 3]
    return keep(b.ip_version == 4, v)


def v6_address(col: np.ndarray, b: PacketBatch) -> np.ndarray:
    """IPv6 addresses (16 octets); zeros for IPv4 packets."""
    return keep(b.ip_version == 6, col)


def _icmp(b: PacketBatch, version: int, proto: int, v: np.ndarray) -> np.ndarray:
    return keep((b.ip_version == version) & (b.proto == proto), v)


def type_code(b: PacketBatch) -> np.ndarray:
    """ICMP type * 256 + code, as icmpTypeCode* carries them."""
    return (b.icmp_type.astype(np.uint16) << 8) | b.icmp_code


EXTRACT: dict[str, Callable[[PacketBatch], np.ndarray]] = {
    "sourceIPv4Address": lambda b: v4_address(b.src_addr, b),
    "destinationIPv4Address": lambda b: v4_address(b.dst_addr, b),
    "sourceIPv6Address": lambda b: v6_address(b.src_addr, b),
    "destinationIPv6Address": lambda b: v6_address(b.dst_addr, b),
    "protocolIdentifier": lambda b: b.proto,
    "sourceTransportPort": lambda b: b.src_port,
    "destinationTransportPort": lambda b: b.dst_port,
    "tcpSourcePort": lambda b: keep(b.proto == _TCP, b.src_port),
    "tcpDestinationPort": lambda b: keep(b.proto == _TCP, b.dst_port),
    "udpSourcePort": lambda b: keep(b.proto == _UDP, b.src_port),
    "udpDestinationPort": lambda b: keep(b.proto == _UDP, b.dst_port),
    "icmpTypeCodeIPv4": lambda b: _icmp(b, 4, ICMP4, type_code(b)),
    "icmpTypeIPv4": lambda b: _icmp(b, 4, ICMP4, b.icmp_type),
    "icmpCodeIPv4": lambda b: _icmp(b, 4, ICMP4, b.icmp_code),
    "icmpTypeCodeIPv6": lambda b: _icmp(b, 6, ICMP6, type_code(b)),
    "icmpTypeIPv6": lambda b: _icmp(b, 6, ICMP6, b.icmp_type),
    "icmpCodeIPv6": lambda b: _icmp(b, 6, ICMP6, b.icmp_code),
    "ipClassOfService": lambda b: b.tos,
    "ipDiffServCodePoint": lambda b: b.tos >> 2,
    "ipPrecedence": lambda b: b.tos >> 5,
    "ipVersion": lambda b: b.ip_version,
    "flowLabelIPv6": lambda b: keep(b.ip_version == 6, b.flow_label),
    "fragmentIdentification": lambda b: b.frag_id,
    "vlanId": lambda b: b.vlan_id,
    "sourceMacAddress": lambda b: b.src_mac,
    "destinationMacAddress": lambda b: b.dst_mac,
    "postDestinationMacAddress": lambda b: b.dst_mac,
    "nextHeaderIPv6": lambda b: keep(b.ip_version == 6, b.next_header),
}
