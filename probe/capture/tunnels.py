"""Tunnels an Observation Point may open, so that the inner packet is the one metered.

Each kind is switched on in the config (``flowprobe:tunnels``, see ``SWITCHES``); switched off,
its packets are metered as they are on the wire (the outer packet). Switched on, a packet is
recognised by the outer header alone (IP protocol 47, 4 or 41; UDP destination port 4789, 6081
or 2152), and then:

- its tunnel header says what it carries and that is opened: the inner packet is metered, as
  if it had been captured on its own (its own IP header, carriers such as an inner Ethernet
  frame with tags or an MPLS stack, extension headers, ports), and tunnels nest;
- its tunnel header says it carries nothing to meter (a GRE version 1 or routing header, a
  protocol other than IPv4/IPv6/Ethernet/MPLS, VXLAN without the I flag, a Geneve control
  packet, a GTP-U message other than a G-PDU or a G-PDU that is not IP): the outer packet is
  metered, exactly as with the switch off;
- the outer packet ends (by its IP length) before the tunnel header does: it was no tunnel
  packet (a short datagram to the port) and is metered as it is;
- a header it needs was not captured: the packet is counted as too-short, like any other
  packet the snaplen cut.

Outer fragments are never opened (only the first holds the tunnel header). The outermost
tunnel's id, kind and outer IP addresses are kept for the IEs that export them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.branchless import keep, pick
from probe.capture import linktypes as lt
from probe.capture import reasons as r
from probe.capture.batch import (
    GENEVE,
    GENEVE_PORT,
    GRE,
    GTPU,
    GTPU_PORT,
    IPIP,
    IPV6IP,
    NVGRE,
    VXLAN,
    VXLAN_PORT,
)
from probe.capture.gather import Buffer, be16, be32
from probe.capture.ip import IpLayer, ip_layer
from probe.capture.link import ETH, ETHERTYPE_CLASS, MPLS, V4, V6, Carriers
from probe.config.model import TUNNELS

# The config's switches (flowprobe:tunnels leaves), each opening what its name says.
SWITCHES = TUNNELS
MAX_NESTING = 4  # tunnels inside tunnels deeper than this are metered as the deepest opened

_TCP, _UDP, _GRE, _IPIP, _IPV6 = 6, 17, 47, 4, 41
_ERSPAN, _ERSPAN3, _WCCP = 0x88BE, 0x22EB, 0x883E  # GRE protocol types
_GRE_SPECIAL = np.zeros(1 << 16, dtype=bool)
_GRE_SPECIAL[[_ERSPAN, _ERSPAN3, _WCCP]] = True
_OPENABLE = np.zeros(16, dtype=bool)
_OPENABLE[[V4, V6, ETH, MPLS]] = True
_GTP_NIBBLE = np.zeros(16, dtype=np.uint8)
_GTP_NIBBLE[[4, 6]] = [V4, V6]
_MAX_GTP_EXTENSIONS = 8


@dataclass(slots=True)
class Outer:
    """What the outermost opened tunnel leaves behind, per packet (zeros: not tunnelled)."""

    kind: np.ndarray  # uint8 tunnel_kind
    tunnel_id: np.ndarray  # uint32: GRE key, VXLAN/Geneve VNI, GTP-U TEID
    version: np.ndarray  # uint8 outer IP version
    src: np.ndarray | None  # (n, 16) outer addresses, IPv4 in octets 0..3 (None: not wanted)
    dst: np.ndarray | None


@dataclass(slots=True)
class _Found:
    """Tunnel packets of one kind: rows, where the inner packet starts and what it is."""

    rows: np.ndarray
    kind: np.ndarray  # tunnel_kind per row
    tunnel_id: np.ndarray
    inner: np.ndarray  # offset of the inner header
    what: np.ndarray  # link.* class of the inner header; 0: not opened (outer metered)
    upto: np.ndarray  # end of the octets the tunnel header needs


def _protocols(switches: frozenset[str]) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[_GRE] = "gre" in switches
    table[_IPIP] = "ipInIp" in switches
    table[_IPV6] = "ipv6InIp" in switches
    table[_UDP] = bool({"vxlan", "geneve", "gtpU"} & switches)
    return table


def _gre(mem: Buffer, rows: np.ndarray, l4: np.ndarray) -> _Found:
    # RFC 2784/2890: C, K, S flags, version 0; anything else (routing, RFC 1701 recursion,
    # PPTP's version 1) is not opened. Besides IP, MPLS and Ethernet (NVGRE), GRE carries
    # mirrored Ethernet frames (ERSPAN: type I bare, type II behind 8 octets when S is set,
    # type III behind 12, plus 8 with its O flag, when its frame type is Ethernet) and WCCP's
    # redirected IPv4 packets (behind a 4-octet redirect header).
    w = mem.window(l4, 16)
    flags = be16(w, 0)
    protocol = be16(w, 2)
    c, k, s = (flags >> 15) & 1, (flags >> 13) & 1, (flags >> 12) & 1
    hlen = 4 * (1 + c + k + s)
    what = ETHERTYPE_CLASS[protocol]
    extra = np.zeros(rows.shape[0], dtype=hlen.dtype)
    special = np.flatnonzero(_GRE_SPECIAL[protocol])
    if special.size:
        proto = protocol[special]
        word3 = be32(mem.window(l4[special] + hlen[special], 12), 8)
        ethernet = (proto == _ERSPAN) | ((proto == _ERSPAN3) & (((word3 >> 10) & 0x1F) == 0))
        what[special] = pick(ethernet, np.full(special.size, ETH, np.uint8),
                             keep(proto == _WCCP, np.full(special.size, V4, np.uint8)))
        extra[special] = np.select([proto == _WCCP, proto == _ERSPAN, proto == _ERSPAN3],
                                   [4, 8 * s[special], 12 + 8 * (word3 & 1)])
    what = keep((flags & 0x4FFF) == 0, what)
    key = keep(k == 1, pick(c == 1, be32(w, 8), be32(w, 4)))
    # NVGRE (RFC 7637): Ethernet with a key and neither checksum nor sequence number.
    nvgre = (protocol == lt.ETHERTYPE_TEB) & (k == 1) & (c == 0) & (s == 0)
    kind = pick(nvgre, np.full(rows.shape[0], NVGRE, np.uint8), np.full(rows.shape[0], GRE,
                                                                        np.uint8))
    inner = l4 + hlen + extra
    return _Found(rows, kind, key, inner, what, pick(what != 0, inner, l4 + 4))


def _vxlan(mem: Buffer, rows: np.ndarray, l4: np.ndarray) -> _Found:
    w = mem.window(l4 + 8, 8)  # RFC 7348: flags (I = 0x08), reserved, VNI, reserved
    what = keep((w[:, 0] & 0x08) != 0, np.full(rows.shape[0], ETH, np.uint8))
    return _Found(rows, np.full(rows.shape[0], VXLAN, np.uint8), be32(w, 4) >> 8, l4 + 16,
                  what, l4 + 16)


def _geneve(mem: Buffer, rows: np.ndarray, l4: np.ndarray) -> _Found:
    # RFC 8926: version 0, options length in 4-octet words, O flag = control message.
    w = mem.window(l4 + 8, 8)
    options = (w[:, 0] & 0x3F).astype(l4.dtype) * 4
    ok = ((w[:, 0] >> 6) == 0) & ((w[:, 1] & 0x80) == 0)
    what = keep(ok, ETHERTYPE_CLASS[be16(w, 2)])
    end = l4 + 16 + options
    return _Found(rows, np.full(rows.shape[0], GENEVE, np.uint8), be32(w, 4) >> 8, end, what,
                  pick(what != 0, end, l4 + 16))


def _gtpu(mem: Buffer, rows: np.ndarray, l4: np.ndarray, end: np.ndarray) -> _Found:
    # 3GPP TS 29.281: version 1, PT 1, message type 255 (G-PDU); E, S or PN add 4 octets,
    # E starts a chain of extension headers (length in 4-octet units, next type last).
    w = mem.window(l4 + 8, 12)
    g_pdu = ((w[:, 0] >> 4) == 0x3) & (w[:, 1] == 0xFF)
    q = l4 + 16 + 4 * ((w[:, 0] & 0x07) != 0)
    upto = pick(g_pdu, q, l4 + 16)
    nxt = keep(g_pdu & ((w[:, 0] & 0x04) != 0), w[:, 11])
    bad = np.zeros(rows.shape[0], dtype=bool)
    for _ in range(_MAX_GTP_EXTENSIONS):
        more = np.flatnonzero((nxt != 0) & ~bad & (q + 1 <= end))
        if not more.size:
            break
        size = mem.window(q[more], 1)[:, 0].astype(q.dtype) * 4
        bad[more[size == 0]] = True
        at = q[more] + size
        nxt[more] = mem.window(at - 1, 1)[:, 0]
        q[more] = at
    pending = (nxt != 0) & ~bad
    bad |= pending & (q + 1 <= end)  # a chain longer than any real one
    # The next extension header's length, or the inner packet's first octet (IPv4 or IPv6?),
    # must have been captured.
    upto = pick(g_pdu & ~bad, q + 1, upto)
    what = keep(g_pdu & ~bad & ~pending, _GTP_NIBBLE[mem.window(q, 1)[:, 0] >> 4])
    return _Found(rows, np.full(rows.shape[0], GTPU, np.uint8), be32(w, 4), q, what, upto)


def _ip_in_ip(rows: np.ndarray, l4: np.ndarray, kind: int, family: int) -> _Found:
    n = rows.shape[0]
    return _Found(rows, np.full(n, kind, np.uint8), np.zeros(n, np.uint32), l4,
                  np.full(n, family, np.uint8), l4)


def _find(mem: Buffer, ip: IpLayer, end: np.ndarray, rows: np.ndarray,
          switches: frozenset[str]) -> list[_Found]:
    proto, l4 = ip.proto[rows], ip.l4[rows]
    found = []
    for number, switch, kind, family in ((_IPIP, "ipInIp", IPIP, V4),
                                         (_IPV6, "ipv6InIp", IPV6IP, V6)):
        if switch in switches and (sel := proto == number).any():
            found.append(_ip_in_ip(rows[sel], l4[sel], kind, family))
    if "gre" in switches and (sel := proto == _GRE).any():
        found.append(_gre(mem, rows[sel], l4[sel]))
    udp = np.flatnonzero((proto == _UDP) & (l4 + 4 <= end[rows]))
    if udp.size:
        dport = be16(mem.window(l4[udp], 4), 2)
        for switch, port in (("vxlan", VXLAN_PORT), ("geneve", GENEVE_PORT),
                             ("gtpU", GTPU_PORT)):
            sel = udp[dport == port]
            if switch not in switches or not sel.size:
                continue
            if switch == "vxlan":
                found.append(_vxlan(mem, rows[sel], l4[sel]))
            elif switch == "geneve":
                found.append(_geneve(mem, rows[sel], l4[sel]))
            else:
                found.append(_gtpu(mem, rows[sel], l4[sel], end[rows[sel]]))
    return found


def _addresses(ip: np.ndarray, is6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    src = ip[:, 8:24].copy()
    dst = ip[:, 24:40].copy()
    v4 = ~is6
    src[v4] = 0
    dst[v4] = 0
    src[v4, :4] = ip[v4, 12:16]
    dst[v4, :4] = ip[v4, 16:20]
    return src, dst


def open_tunnels(mem: Buffer, ip: IpLayer, end: np.ndarray, reason: np.ndarray,
                 walk: Carriers, switches: frozenset[str], addresses: bool) -> Outer:
    """Open the tunnels ``switches`` names, in place: the rows of ``ip``, ``reason`` and the
    carrier walk of packets whose inner packet is metered become the inner packet's."""
    n = end.shape[0]
    outer = Outer(np.zeros(n, np.uint8), np.zeros(n, np.uint32), np.zeros(n, np.uint8),
                  np.zeros((n, 16), np.uint8) if addresses else None,
                  np.zeros((n, 16), np.uint8) if addresses else None)
    candidate = _protocols(switches)
    rows = np.flatnonzero(candidate[ip.proto] & (reason == r.OK) & (ip.fragment == 0))
    for _ in range(MAX_NESTING):
        if not rows.size:
            break
        found = _find(mem, ip, end, rows, switches)
        if not found:
            break
        t = _merge(found)
        # A tunnel header longer than the packet means no tunnel (a short datagram to the
        # port); one the snaplen cut is counted as too-short.
        over = t.upto > ip.ip_end[t.rows]
        cut = (t.upto > end[t.rows]) & ~over
        reason[t.rows[cut]] = r.TOO_SHORT
        opened = np.flatnonzero((t.what != 0) & ~cut & ~over)
        o = t.rows[opened]
        if not o.size:
            break
        saved = walk.save(o)
        walk.kind[o] = t.what[opened]
        walk.p[o] = t.inner[opened]
        walk.run(o)
        family, why = walk.finish(o)
        # Inside, no IP after all (ARP in VXLAN, say): the outer packet is metered.
        other = why == r.NON_IP
        if other.any():
            walk.restore(o, saved, other)
            o, opened, family, why = o[~other], opened[~other], family[~other], why[~other]
        first = outer.kind[o] == 0  # the outermost tunnel is the one kept
        fo = o[first]
        outer.kind[fo] = t.kind[opened][first]
        outer.tunnel_id[fo] = t.tunnel_id[opened][first]
        outer.version[fo] = ip.family[fo]
        if outer.src is not None and outer.dst is not None:
            outer.src[fo], outer.dst[fo] = _addresses(ip.ip[fo], ip.family[fo] == 6)
        inner = ip_layer(mem, walk.p[o], end[o], family, why)
        ip.put(o, inner)
        reason[o] = why
        rows = o[candidate[ip.proto[o]] & (why == r.OK) & (ip.fragment[o] == 0)]
    return outer


def _merge(found: list[_Found]) -> _Found:
    if len(found) == 1:
        return found[0]
    parts = [np.concatenate([getattr(f, name) for f in found])
             for name in ("rows", "kind", "tunnel_id", "inner", "what", "upto")]
    return _Found(*parts)
