"""The enterprise-specific IEs flowprobe fills, and IANA octetArrays of a defined size.

A metered tunnel (``probe.capture.tunnels``) leaves facts a layout may export: the tunnel's id
and its outer header. IANA has IEs for two of them, and those are used: ``greKey`` (296) for the
GRE key and ``layer2SegmentId`` (351) for the VXLAN VNI and NVGRE VSID. IANA has none for a
tunnel's outer addresses, a GTP-U TEID or a Geneve VNI. For those flowprobe uses the IEs of
ntop's nProbe (private enterprise number 35632), the most widely deployed probe that meters
tunnel contents: in its tunnel mode the flow is the inner packet's and its ``UNTUNNELED_*`` IEs
carry the outer header, exactly this case, and Wireshark, ntopng and nProbe's collector decode
them. flowprobe has no enterprise number of its own, and an invented one would be decoded by
nobody. Numbers and types are nProbe's (``nprobe -H``: NetFlow v9 57472 + id, IPFIX 35632.id).

NetFlow v9 has no enterprise numbers, so these IEs go out only in IPFIX; the config says so
when a v9 destination is fed a layout that has them.
"""

from __future__ import annotations

NTOP_PEN = 35632

# (pen, id, name, data type, semantics, units, status), as the IANA rows in ``iana.py``.
ENTERPRISE_ELEMENTS: tuple[tuple[int, int, str, str, str, str, str], ...] = (
    # "Upstream tunnel identifier (e.g. GTP TEID, VXLAN VNI) or 0 if unknown"
    (NTOP_PEN, 106, "UPSTREAM_TUNNEL_ID", "unsigned32", "identifier", "", "current"),
    # the outer header's IP protocol and UDP destination port
    (NTOP_PEN, 113, "UNTUNNELED_PROTOCOL", "unsigned8", "identifier", "", "current"),
    (NTOP_PEN, 117, "UNTUNNELED_L4_DST_PORT", "unsigned16", "identifier", "", "current"),
    (NTOP_PEN, 114, "UNTUNNELED_IPV4_SRC_ADDR", "ipv4Address", "default", "", "current"),
    (NTOP_PEN, 116, "UNTUNNELED_IPV4_DST_ADDR", "ipv4Address", "default", "", "current"),
    (NTOP_PEN, 396, "UNTUNNELED_IPV6_SRC_ADDR", "ipv6Address", "default", "", "current"),
    (NTOP_PEN, 397, "UNTUNNELED_IPV6_DST_ADDR", "ipv6Address", "default", "", "current"),
)

# octetArray IEs whose definition fixes their size: "The size of this Information Element is
# 3 octets" (the label, Exp and S fields of one MPLS label stack entry, IANA 70-79).
FIXED_LENGTH: dict[str, int] = {
    name: 3 for name in ("mplsTopLabelStackSection",
                         *(f"mplsLabelStackSection{i}" for i in range(2, 11)))
}
