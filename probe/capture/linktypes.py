"""Link types the decoder understands, and where each one puts the network layer.

Numbers are libpcap DLT values as ``pcap_datalink`` reports them (libpcap maps the file's
LINKTYPE_* to DLT_*, so LINKTYPE_RAW 101 arrives as DLT_RAW 12 on Linux and 14 on OpenBSD).
"""

from __future__ import annotations

EN10MB = 1
NULL = 0  # BSD loopback: 4-byte address family in the capturing host's byte order
LOOP = 108  # OpenBSD loopback: the same, in network byte order
RAW = 12
RAW_OPENBSD = 14
LINKTYPE_RAW = 101
IPV4 = 228
IPV6 = 229
LINUX_SLL = 113
LINUX_SLL2 = 276
PPP = 9  # RFC 1661 PPP, optionally in RFC 1662 HDLC-like framing (ff 03 first)

SUPPORTED: dict[int, str] = {
    EN10MB: "Ethernet",
    NULL: "BSD loopback",
    LOOP: "OpenBSD loopback",
    RAW: "raw IP",
    RAW_OPENBSD: "raw IP",
    LINKTYPE_RAW: "raw IP",
    IPV4: "raw IPv4",
    IPV6: "raw IPv6",
    LINUX_SLL: "Linux cooked (SLL)",
    LINUX_SLL2: "Linux cooked v2 (SLL2)",
    PPP: "PPP",
}

RAW_LINKS = (RAW, RAW_OPENBSD, LINKTYPE_RAW, IPV4, IPV6)

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
# 802.1Q, 802.1ad, and the pre-standard QinQ outer tag some switches still send.
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
# MPLS unicast and multicast (RFC 3032, RFC 5332).
ETHERTYPE_MPLS = (0x8847, 0x8848)
# PPPoE session stage (RFC 2516); the discovery stage (0x8863) carries no IP.
ETHERTYPE_PPPOE_SESSION = 0x8864
# Transparent Ethernet Bridging: an Ethernet frame follows (GRE, NVGRE, Geneve protocol type).
ETHERTYPE_TEB = 0x6558
# Deeper tag stacks than this (per Ethernet header) are counted as unsupported-link.
MAX_VLAN_TAGS = 4
# Deeper MPLS label stacks than this are counted as unsupported-link; the first
# MPLS_LABELS_KEPT entries are kept for the mplsTopLabelStackSection..mplsLabelStackSection10 IEs.
MAX_MPLS_LABELS = 16
MPLS_LABELS_KEPT = 10

# PPP protocol numbers for IP, and for MPLS (RFC 3032 §4.3).
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
PPP_MPLS = (0x0281, 0x0283)

# BSD address families for IPv4 and IPv6 as the different kernels number them.
AF_INET = (2,)
AF_INET6 = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD/BSDI, FreeBSD, Darwin
