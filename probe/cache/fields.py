"""What each metered Information Element reads from a PacketBatch.

One function per packet-derived IE, all vectorised over a batch. A cache groups packets on the
values of its key IEs and keeps, for a non-key use of a key IE, the value of the flow's first
packet. Values of the other IP family's IEs are zero, so IPv4 and IPv6 packets never share a
flow (the IP version is part of every key anyway, see ``key_matrix``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from probe.capture.batch import PacketBatch

_ICMP4, _ICMP6, _TCP, _UDP = 1, 58, 6, 17


def _v4_addr(col: np.ndarray, b: PacketBatch) -> np.ndarray:
    a = col[:, :4].astype(np.uint32)
    v = (a[:, 0] << 24) | (a[:, 1] << 16) | (a[:, 2] << 8) | a[:, 3]
    return np.where(b.ip_version == 4, v, np.uint32(0))


def _v6_addr(col: np.ndarray, b: PacketBatch) -> np.ndarray:
    return np.where((b.ip_version == 6)[:, None], col, np.uint8(0))


def _only(cond: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.where(cond, v, np.zeros(1, dtype=v.dtype))


def _icmp(b: PacketBatch, version: int, proto: int, v: np.ndarray) -> np.ndarray:
    return _only((b.ip_version == version) & (b.proto == proto), v)


def _type_code(b: PacketBatch) -> np.ndarray:
    return (b.icmp_type.astype(np.uint16) << 8) | b.icmp_code


EXTRACT: dict[str, Callable[[PacketBatch], np.ndarray]] = {
    "sourceIPv4Address": lambda b: _v4_addr(b.src_addr, b),
    "destinationIPv4Address": lambda b: _v4_addr(b.dst_addr, b),
    "sourceIPv6Address": lambda b: _v6_addr(b.src_addr, b),
    "destinationIPv6Address": lambda b: _v6_addr(b.dst_addr, b),
    "protocolIdentifier": lambda b: b.proto,
    "sourceTransportPort": lambda b: b.src_port,
    "destinationTransportPort": lambda b: b.dst_port,
    "tcpSourcePort": lambda b: _only(b.proto == _TCP, b.src_port),
    "tcpDestinationPort": lambda b: _only(b.proto == _TCP, b.dst_port),
    "udpSourcePort": lambda b: _only(b.proto == _UDP, b.src_port),
    "udpDestinationPort": lambda b: _only(b.proto == _UDP, b.dst_port),
    "icmpTypeCodeIPv4": lambda b: _icmp(b, 4, _ICMP4, _type_code(b)),
    "icmpTypeIPv4": lambda b: _icmp(b, 4, _ICMP4, b.icmp_type),
    "icmpCodeIPv4": lambda b: _icmp(b, 4, _ICMP4, b.icmp_code),
    "icmpTypeCodeIPv6": lambda b: _icmp(b, 6, _ICMP6, _type_code(b)),
    "icmpTypeIPv6": lambda b: _icmp(b, 6, _ICMP6, b.icmp_type),
    "icmpCodeIPv6": lambda b: _icmp(b, 6, _ICMP6, b.icmp_code),
    "ipClassOfService": lambda b: b.tos,
    "ipDiffServCodePoint": lambda b: b.tos >> 2,
    "ipPrecedence": lambda b: b.tos >> 5,
    "ipVersion": lambda b: b.ip_version,
    "flowLabelIPv6": lambda b: _only(b.ip_version == 6, b.flow_label),
    "fragmentIdentification": lambda b: b.frag_id,
    "vlanId": lambda b: b.vlan_id,
    "sourceMacAddress": lambda b: b.src_mac,
    "destinationMacAddress": lambda b: b.dst_mac,
    "postDestinationMacAddress": lambda b: b.dst_mac,
    "nextHeaderIPv6": lambda b: _only(b.ip_version == 6, b.next_header),
}


def packet_values(batch: PacketBatch, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {n: EXTRACT[n](batch) for n in names}


def _icmp_either(b: PacketBatch) -> np.ndarray:
    """icmpTypeCodeIPv4 | icmpTypeCodeIPv6: each is zero where the other may be set."""
    icmp = ((b.ip_version == 4) & (b.proto == _ICMP4)) | ((b.ip_version == 6) & (b.proto == _ICMP6))
    return _only(icmp, _type_code(b))


# Key IE pairs, one per IP family, that one column can stand for: each member is zero for the
# other family's packets and the IP version leads every key, so the merged column keys flows
# exactly as the pair does, in fewer bytes to hash and compare.
_MERGED: tuple[tuple[str, str, Callable[[PacketBatch], np.ndarray]], ...] = (
    ("sourceIPv4Address", "sourceIPv6Address", lambda b: b.src_addr),
    ("destinationIPv4Address", "destinationIPv6Address", lambda b: b.dst_addr),
    ("icmpTypeCodeIPv4", "icmpTypeCodeIPv6", _icmp_either),
)


def key_matrix(batch: PacketBatch, key_names: tuple[str, ...]) -> np.ndarray:
    """The flow key of every packet as ``(words, packets)`` uint64: word-major, so hashing and
    comparing a key word reads one contiguous column (row-major keys made every pass strided,
    and grouping twice as slow).

    Packet ``i``'s key is column ``i``; as bytes (``key_rows``) it is the concatenation of its
    key values, widest alignment first (16-octet addresses, then 4-, 2- and 1-octet values) and
    zero-padded to whole words; the default 5-tuple key is exactly five words. The IP version
    is always part of the key: records are exported per IP version, so a flow never mixes
    families even when the layout has no address key. Only the key columns are computed here,
    per packet; other values are read at each flow's first packet (``packet_values``).
    """
    n = len(batch)
    columns: list[np.ndarray] = [batch.ip_version]
    names = [name for name in key_names if name != "ipVersion"]
    for v4, v6, merged in _MERGED:
        if v4 in names and v6 in names:
            names.remove(v4)
            names.remove(v6)
            columns.append(merged(batch))
    columns += [EXTRACT[name](batch) for name in names]
    parts = [np.ascontiguousarray(c).reshape(n, -1).view(np.uint8) for c in columns]
    parts.sort(key=lambda part: -_alignment(part.shape[1]))  # stable: same order every batch
    width = sum(p.shape[1] for p in parts)
    words = np.zeros((-(-width // 8), n), dtype=np.uint64)
    at = 0
    for part in parts:
        w = part.shape[1]
        # Every column is 1, 2, 4 or a multiple of 8 octets, so after the sort none crosses
        # a word: whole words (addresses, MACs) are copied, smaller values shifted into place.
        if w % 8 == 0:
            words[at // 8:(at + w) // 8] = part.view("<u8").T
        else:
            value = part.view(f"<u{w}").ravel().astype(np.uint64)
            words[at // 8] |= value << np.uint64(8 * (at % 8))
        at += w
    return words


def _alignment(width: int) -> int:
    """The widest word (8, 4, 2 or 1 octets) that a column of ``width`` octets is made of."""
    return next(s for s in (8, 4, 2, 1) if width % s == 0)
