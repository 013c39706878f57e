"""What each packet-level Information Element reads from a PacketBatch.

One function per packet-derived IE, all vectorised over a batch: the caches key flows and keep
first-packet values with them (``probe.cache.fields``), the filterMatch selector matches on
them. Values of the other IP family's IEs are zero.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from probe.branchless import keep
from probe.capture.batch import GRE, NVGRE, OUTER_PORT, OUTER_PROTOCOL, VXLAN, PacketBatch
from probe.ie import MPLS_LABEL_SECTIONS

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


# --- MPLS and tunnels (issue 17) -----------------------------------------------------------


def _label_section(i: int) -> Callable[[PacketBatch], np.ndarray]:
    """The label, Exp and S of label stack entry ``i`` as the IE's 3 octets (0 if none)."""
    def section(b: PacketBatch) -> np.ndarray:
        entry = b.mpls_labels[:, i].astype(">u4")
        return entry.view(np.uint8).reshape(-1, 4)[:, :3]
    return section


def _segment_id(b: PacketBatch) -> np.ndarray:
    """layer2SegmentId: 0x01 VXLAN or 0x02 NVGRE in the top octet, the 24-bit id below."""
    vxlan = b.tunnel_kind == VXLAN
    nvgre = b.tunnel_kind == NVGRE
    vni = b.tunnel_id.astype(np.uint64)
    return keep(vxlan, (np.uint64(1) << np.uint64(56)) | vni) | keep(
        nvgre, (np.uint64(2) << np.uint64(56)) | (vni >> np.uint64(8)))


def _outer_v4(col: np.ndarray, b: PacketBatch) -> np.ndarray:
    a = col[:, :4].astype(np.uint32)
    v = (a[:, 0] << 24) | (a[:, 1] << 16) | (a[:, 2] << 8) | a[:, 3]
    return keep(b.outer_version == 4, v)


EXTRACT.update({name: _label_section(i) for i, name in enumerate(MPLS_LABEL_SECTIONS)})
EXTRACT.update({
    "mplsTopLabelTTL": lambda b: (b.mpls_labels[:, 0] & 0xFF).astype(np.uint8),
    "mplsTopLabelExp": lambda b: ((b.mpls_labels[:, 0] >> 9) & 7).astype(np.uint8),
    "greKey": lambda b: keep((b.tunnel_kind == GRE) | (b.tunnel_kind == NVGRE),
                             b.tunnel_id),
    "layer2SegmentId": _segment_id,
    "UPSTREAM_TUNNEL_ID": lambda b: b.tunnel_id,
    "UNTUNNELED_PROTOCOL": lambda b: OUTER_PROTOCOL[b.tunnel_kind],
    "UNTUNNELED_L4_DST_PORT": lambda b: OUTER_PORT[b.tunnel_kind],
    "UNTUNNELED_IPV4_SRC_ADDR": lambda b: _outer_v4(b.outer_src, b),
    "UNTUNNELED_IPV4_DST_ADDR": lambda b: _outer_v4(b.outer_dst, b),
    "UNTUNNELED_IPV6_SRC_ADDR": lambda b: keep(b.outer_version == 6, b.outer_src),
    "UNTUNNELED_IPV6_DST_ADDR": lambda b: keep(b.outer_version == 6, b.outer_dst),
})
