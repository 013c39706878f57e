"""PacketBatch: decoded packets as columns, the unit that flows from capture to the cache.

The hot path never builds a Python object per packet: a capture source reads many packets in
one call, the decoder fills these numpy columns for the whole batch, and selectors and caches
work on masks and group-bys over them. Only packets that decoded to IP are in a batch; the rest
are counted by reason in ``DecodeStats`` and skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from probe.batching import PAYLOAD_HEAD  # octets of IP payload kept for hash-based selection

# tunnel_kind values: the tunnel a packet came out of (``probe.capture.tunnels``), and the outer
# IP protocol and UDP destination port each kind is recognised by (IEs export them).
GRE, VXLAN, GENEVE, GTPU, IPIP, IPV6IP, NVGRE = 1, 2, 3, 4, 5, 6, 7
VXLAN_PORT, GENEVE_PORT, GTPU_PORT = 4789, 6081, 2152
OUTER_PROTOCOL = np.array([0, 47, 17, 17, 17, 4, 41, 47], dtype=np.uint8)
OUTER_PORT = np.array([0, 0, VXLAN_PORT, GENEVE_PORT, GTPU_PORT, 0, 0, 0], dtype=np.uint16)

# Column name -> (dtype, per-row shape). Addresses are 16 octets for both families; an IPv4
# address sits in octets 0..3 with the rest zero, so one grouping works for both.
COLUMNS: dict[str, tuple[str, tuple[int, ...]]] = {
    "ts_us": ("int64", ()),  # packet time, microseconds since the epoch
    "ip_version": ("uint8", ()),  # 4 or 6
    "src_addr": ("uint8", (16,)),
    "dst_addr": ("uint8", (16,)),
    "proto": ("uint8", ()),  # upper-layer protocol (after the IPv6 extension chain)
    "src_port": ("uint16", ()),  # TCP/UDP/SCTP/UDP-Lite; 0 for other protocols and
    "dst_port": ("uint16", ()),  # for non-first fragments
    "icmp_type": ("uint8", ()),  # ICMP / ICMPv6 only, else 0
    "icmp_code": ("uint8", ()),
    "tos": ("uint8", ()),  # IPv4 TOS / IPv6 traffic class
    "ttl": ("uint8", ()),  # IPv4 TTL / IPv6 hop limit
    "ip_len": ("uint32", ()),  # IP total length as the header says (header + payload)
    "tcp_flags": ("uint16", ()),  # low 9 bits of the TCP flags (NS..FIN), 0 if not TCP
    "flow_label": ("uint32", ()),  # IPv6 only
    "frag_id": ("uint32", ()),  # IPv4 identification / IPv6 fragment header id, 0 if none
    "fragment": ("uint8", ()),  # 0 not a fragment, 1 first fragment, 2 non-first fragment
    "next_header": ("uint8", ()),  # IPv6 fixed header's Next Header field
    "vlan_id": ("uint16", ()),  # outermost 802.1Q/802.1ad VID, 0 if untagged
    "src_mac": ("uint64", ()),  # 48-bit MAC in the low bits, 0 if the link has none
    "dst_mac": ("uint64", ()),
    # Hash-based selection's input (RFC 5475 §6.2.4.1), decoded only when a filterHash asks.
    "ip_word1": ("uint32", ()),  # IP header octets 4..7 as sent (IPv4 id/flags/offset,
    #                              IPv6 payload length/next header/hop limit)
    "payload_head": ("uint8", (PAYLOAD_HEAD,)),  # first octets of the IP payload, zero-filled
    "payload_head_len": ("uint8", ()),  # how many of them the packet has and the capture kept
    # MPLS label stack entries (label 20 bits, TC 3, S 1, TTL 8) of the first stack, top first;
    # 0 past its bottom (at most ten kept: the IEs go to mplsLabelStackSection10).
    "mpls_labels": ("uint32", (10,)),
    # Where the IP header and the upper-layer header (after any IPv6 extension headers) start,
    # in octets from the frame's first: what reads bytes of a layer uses (the collector's
    # mapping of sFlow sampled headers); decoded only when asked.
    "l3_offset": ("uint32", ()),
    "l4_offset": ("uint32", ()),
    # The outermost opened tunnel (probe.capture.tunnels); all 0 when none was opened.
    "tunnel_kind": ("uint8", ()),  # GRE, VXLAN, ... above
    "tunnel_id": ("uint32", ()),  # GRE key, VXLAN/Geneve VNI, GTP-U TEID
    "outer_version": ("uint8", ()),  # the outer IP header's version
    "outer_src": ("uint8", (16,)),  # its addresses, laid out as src_addr/dst_addr
    "outer_dst": ("uint8", (16,)),
    # PSAMP packet reports (RFC 5477 §8.2), decoded only when a cache reports them. A section
    # is the first octets from where it starts, zero past what the packet has and the capture
    # kept; its width is what the widest report of it asks (``decode_batch``'s ``widths``),
    # none otherwise. The _len columns say how many octets there were (at most 65535).
    "frame_len": ("uint32", ()),  # the frame's length: captured, or link header + IP length
    #                               when the snap length cut it (never its padding then)
    "frame_section": ("uint8", (0,)),  # from the start of the link-layer frame
    "frame_section_len": ("uint16", ()),
    "ip_section": ("uint8", (0,)),  # from the IP header, up to the end of the IP packet
    "ip_section_len": ("uint16", ()),
    "payload_section": ("uint8", (0,)),  # from the IP payload (as payload_head)
    "payload_section_len": ("uint16", ()),
}
# The columns whose row width is chosen per source (``shape``).
SECTIONS = ("frame_section", "ip_section", "payload_section")


def shape(name: str, widths: Mapping[str, int] | None = None) -> tuple[int, ...]:
    """A column's row shape: a section's is its width (none when not asked for)."""
    if widths and name in widths:
        return (widths[name],)
    return COLUMNS[name][1]


@dataclass(slots=True)
class PacketBatch:
    """Column-per-field view of ``len(self)`` decoded IP packets, in capture order."""

    ts_us: np.ndarray
    ip_version: np.ndarray
    src_addr: np.ndarray
    dst_addr: np.ndarray
    proto: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray
    icmp_type: np.ndarray
    icmp_code: np.ndarray
    tos: np.ndarray
    ttl: np.ndarray
    ip_len: np.ndarray
    tcp_flags: np.ndarray
    flow_label: np.ndarray
    frag_id: np.ndarray
    fragment: np.ndarray
    next_header: np.ndarray
    vlan_id: np.ndarray
    src_mac: np.ndarray
    dst_mac: np.ndarray
    ip_word1: np.ndarray
    payload_head: np.ndarray
    payload_head_len: np.ndarray
    mpls_labels: np.ndarray
    l3_offset: np.ndarray
    l4_offset: np.ndarray
    tunnel_kind: np.ndarray
    tunnel_id: np.ndarray
    outer_version: np.ndarray
    outer_src: np.ndarray
    outer_dst: np.ndarray
    frame_len: np.ndarray
    frame_section: np.ndarray
    frame_section_len: np.ndarray
    ip_section: np.ndarray
    ip_section_len: np.ndarray
    payload_section: np.ndarray
    payload_section_len: np.ndarray

    def __len__(self) -> int:
        return int(self.ts_us.shape[0])

    @classmethod
    def empty(cls, n: int = 0) -> PacketBatch:
        return cls(**{k: np.zeros((n, *shape), dtype=dt) for k, (dt, shape) in COLUMNS.items()})

    def take(self, index: np.ndarray) -> PacketBatch:
        """Rows selected by a boolean mask or an index array (order kept)."""
        return PacketBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, batches: list[PacketBatch]) -> PacketBatch:
        if not batches:
            return cls.empty()
        return cls(**{k: np.concatenate([getattr(b, k) for b in batches]) for k in COLUMNS})


class ColumnReads:
    """Stands in for a PacketBatch of no rows and notes which columns are read: running a
    cache's or a selector's code on it says what the decoder must fill for them."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __len__(self) -> int:
        return 0

    def __getattr__(self, name: str) -> np.ndarray:
        dtype, shape = COLUMNS[name]
        self.names.add(name)
        return np.zeros((0, *shape), dtype)


@dataclass(slots=True)
class DecodeStats:
    """What a capture source read and why it skipped what it skipped."""

    packets_read: int = 0
    packets_decoded: int = 0
    ignored: Counter[str] = field(default_factory=Counter)  # reason -> packets

    def ignore(self, reason: str, n: int = 1) -> None:
        self.ignored[reason] += n
