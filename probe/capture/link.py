"""Link layer, vectorised: where each packet's IP header starts and which IP it claims to be.

One function per link type family, all returning a ``LinkLayer`` whose columns line up with
the batch. ``family`` is 4 or 6 when the link header names the IP version, 0 when only the IP
header can tell (raw IP links).

Between the link header and IP there may be carriers, opened here for every link type that has
them: 802.1Q/802.1ad tags, MPLS label stacks (RFC 3032), PPPoE sessions with PPP inside
(RFC 2516), and an Ethernet frame inside an MPLS pseudowire that carries the control word
(RFC 4385, RFC 4448 §4.6; "VLAN in MPLS"). ``Carriers`` walks them one header per pass, each pass
touching only the rows still inside a carrier, so untagged Ethernet costs one table lookup.
The tunnel stage (``probe.capture.tunnels``) hands the Ethernet or MPLS payload of a tunnel to
the same walk.

Fields taken on the way are those met first: ``vlan_id`` is the first tag's VID, the MPLS
columns the first label stack, MACs the outermost Ethernet header's (the link the probe sees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.branchless import keep
from probe.capture import linktypes as lt
from probe.capture import reasons as r
from probe.capture.gather import Buffer, be16, be32, macs

# What follows a header, as one table lookup per packet instead of several compares. IPv4 and
# IPv6 are their version numbers, so a finished walk's kind is the packet's family.
OTHER, TAG, MPLS, PPPOE, V4, ETH, V6, UNOPENED, SHORT = 0, 1, 2, 3, 4, 5, 6, 7, 8
_CARRIER = np.zeros(16, dtype=bool)
_CARRIER[[TAG, MPLS, PPPOE, ETH]] = True
ETHERTYPE_CLASS = np.zeros(1 << 16, dtype=np.uint8)
ETHERTYPE_CLASS[lt.ETHERTYPE_IPV4] = V4
ETHERTYPE_CLASS[lt.ETHERTYPE_IPV6] = V6
ETHERTYPE_CLASS[list(lt.VLAN_TPIDS)] = TAG
ETHERTYPE_CLASS[list(lt.ETHERTYPE_MPLS)] = MPLS
ETHERTYPE_CLASS[lt.ETHERTYPE_PPPOE_SESSION] = PPPOE
ETHERTYPE_CLASS[lt.ETHERTYPE_TEB] = ETH
PPP_CLASS = np.zeros(1 << 16, dtype=np.uint8)
PPP_CLASS[lt.PPP_IPV4] = V4
PPP_CLASS[lt.PPP_IPV6] = V6
PPP_CLASS[list(lt.PPP_MPLS)] = MPLS
# The first nibble after the bottom MPLS label: IPv4, IPv6, or 0 = a pseudowire control word.
_NIBBLE_CLASS = np.full(16, UNOPENED, dtype=np.uint8)
_NIBBLE_CLASS[[4, 6, 0]] = [V4, V6, ETH]
_MAX_PASSES = 2 * lt.MAX_VLAN_TAGS + lt.MAX_MPLS_LABELS + 6


@dataclass(slots=True)
class LinkLayer:
    l3: np.ndarray  # absolute offset of the IP header in the buffer
    family: np.ndarray  # uint8: 4, 6, or 0 = decide from the version nibble
    reason: np.ndarray  # uint8 reason code, 0 = carry on
    carriers: Carriers  # vlan_id and the MPLS labels, and the walk the tunnel stage reuses
    src_mac: np.ndarray  # uint64
    dst_mac: np.ndarray  # uint64


class Carriers:
    """Each packet's way through carriers, for the whole batch: ``kind`` says what starts at
    ``p``; ``run`` opens carriers for some rows until each reaches IP or something else."""

    __slots__ = ("buf", "done", "end", "kind", "labels", "mpls", "p", "tagged", "tags", "vlan")

    def __init__(self, buf: Buffer, end: np.ndarray, kind: np.ndarray, p: np.ndarray,
                 want_mpls: bool) -> None:
        n = end.shape[0]
        self.buf, self.end, self.kind, self.p = buf, end, kind, p
        self.vlan = np.zeros(n, dtype=np.uint16)  # first VID met
        # Label stack entries (label, TC, S, TTL) of the first stack, top first; None: not wanted.
        self.mpls = np.zeros((n, lt.MPLS_LABELS_KEPT), np.uint32) if want_mpls else None
        self.tagged: np.ndarray | None = None  # a VID was taken (per packet)
        self.tags: np.ndarray | None = None  # tags in the current Ethernet header
        self.labels: np.ndarray | None = None  # labels in the current stack
        self.done: np.ndarray | None = None  # the first stack ended (no more labels kept)

    def run(self, rows: np.ndarray) -> None:
        """Open carriers for ``rows`` (indices) until none is left inside one."""
        kind = self.kind
        rows = rows[_CARRIER[kind[rows]]]
        self._walk(rows)

    def _walk(self, rows: np.ndarray) -> None:
        kind = self.kind
        for _ in range(_MAX_PASSES):
            if not rows.size:
                return
            k = kind[rows]
            present = np.bincount(k, minlength=16)
            for code, step in ((TAG, self._tag), (MPLS, self._label), (PPPOE, self._pppoe),
                               (ETH, self._ethernet)):
                if present[code]:
                    step(rows if present[code] == rows.size else rows[k == code])
            rows = rows[_CARRIER[kind[rows]]]
        kind[rows] = UNOPENED

    def _tag(self, rows: np.ndarray) -> None:
        if self.tags is None:
            self.tags = np.zeros(self.kind.shape[0], dtype=np.uint8)
            self.tagged = np.zeros(self.kind.shape[0], dtype=bool)
        assert self.tagged is not None
        w = self.buf.window(self.p[rows], 4)
        untagged = ~self.tagged[rows]
        self.vlan[rows[untagged]] = (be16(w, 0) & 0x0FFF)[untagged]
        self.tagged[rows] = True
        tags = self.tags[rows] + 1
        self.tags[rows] = tags
        kind = ETHERTYPE_CLASS[be16(w, 2)]
        kind[tags > lt.MAX_VLAN_TAGS] = UNOPENED
        self.kind[rows] = kind
        self.p[rows] += 4

    def _label(self, rows: np.ndarray) -> None:
        n = self.kind.shape[0]
        if self.labels is None:
            self.labels = np.zeros(n, dtype=np.uint8)
            self.done = np.zeros(n, dtype=bool)
        assert self.done is not None
        lse = be32(self.buf.window(self.p[rows], 4), 0)
        depth = self.labels[rows]
        if self.mpls is not None:
            kept = (depth < lt.MPLS_LABELS_KEPT) & ~self.done[rows]
            self.mpls[rows[kept], depth[kept]] = lse[kept]
        self.labels[rows] += 1
        self.p[rows] += 4
        bottom = (lse & 0x100) != 0
        self.kind[rows[~bottom & (depth + 1 >= lt.MAX_MPLS_LABELS)]] = UNOPENED
        ends = rows[bottom]
        if ends.size:
            self.done[ends] = True
            self.labels[ends] = 0
            at = self.p[ends]
            nibble = self.buf.window(at, 1)[:, 0] >> 4
            kind = _NIBBLE_CLASS[nibble]
            kind[at + 1 > self.end[ends]] = SHORT  # nothing after the stack was captured
            self.kind[ends] = kind
            self.p[ends] += 4 * (kind == ETH)  # the pseudowire control word

    def _pppoe(self, rows: np.ndarray) -> None:
        # 6 octets of PPPoE (version/type 0x11, code 0 = session data, session id, length),
        # then PPP's protocol: two octets, or one under protocol-field compression (odd first).
        w = self.buf.window(self.p[rows], 8)
        one = (w[:, 6] & 1) == 1
        protocol = np.where(one, w[:, 6].astype(np.int32), be16(w, 6))
        session = (w[:, 0] == 0x11) & (w[:, 1] == 0)
        self.kind[rows] = keep(session, PPP_CLASS[protocol])
        self.p[rows] += 8 - one

    def _ethernet(self, rows: np.ndarray) -> None:
        """An Ethernet frame inside a pseudowire or a tunnel: its MACs are not the link's."""
        self.kind[rows] = ETHERTYPE_CLASS[be16(self.buf.window(self.p[rows] + 12, 2), 0)]
        self.p[rows] += 14
        if self.tags is not None:
            self.tags[rows] = 0

    def save(self, rows: np.ndarray) -> tuple[np.ndarray | None, ...]:
        """What a walk may change in the fields kept per packet (and ``p``, which is also the
        IP layer's header offset), for ``restore``."""
        return tuple(None if a is None else a[rows].copy()
                     for a in (self.p, self.vlan, self.tagged, self.mpls, self.done))

    def restore(self, rows: np.ndarray, saved: tuple[np.ndarray | None, ...],
                which: np.ndarray) -> None:
        """Put back the fields of ``rows[which]`` as ``save`` found them (a tunnel whose
        inside was not opened after all)."""
        for a, before in zip((self.p, self.vlan, self.tagged, self.mpls, self.done), saved,
                             strict=True):
            if a is not None:
                a[rows[which]] = np.zeros(a.shape[1:], a.dtype) if before is None \
                    else before[which]

    def finish(self, rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """(family, reason) of ``rows`` once walked: what ended each walk, or too-short when a
        header it read was not captured (the octets before ``p``)."""
        kind = self.kind[rows]
        ip = (kind == V4) | (kind == V6)
        family = keep(ip, kind)
        reason = keep(~ip, np.full(kind.shape[0], r.NON_IP, np.uint8))  # r.OK is 0
        if not ip.all():
            reason[(kind == UNOPENED) | _CARRIER[kind]] = r.UNSUPPORTED_LINK
            reason[kind == SHORT] = r.TOO_SHORT
        reason[self.p[rows] > self.end[rows]] = r.TOO_SHORT
        return family, reason


def _walked(buf: Buffer, kind: np.ndarray, p: np.ndarray, end: np.ndarray, want_mpls: bool,
            src: np.ndarray | None = None, dst: np.ndarray | None = None) -> LinkLayer:
    walk = Carriers(buf, end, kind, p, want_mpls)
    rows = np.flatnonzero(_CARRIER[kind])
    if rows.size:
        walk._walk(rows)
    family, reason = walk.finish(slice(None))
    if src is None or dst is None:
        src = np.zeros(end.shape[0], dtype=np.uint64)
        dst = src.copy()
    return LinkLayer(walk.p, family, reason, walk, src, dst)


def ethernet(buf: Buffer, off: np.ndarray, end: np.ndarray, want_macs: bool = True,
             want_mpls: bool = False) -> LinkLayer:
    if not want_macs:  # only the ethertype: a 2-octet window instead of 16
        et = be16(buf.window(off + 12, 2), 0)
        return _walked(buf, ETHERTYPE_CLASS[et], off + 14, end, want_mpls)
    head = buf.window(off, 16)
    src, dst = macs(head)
    return _walked(buf, ETHERTYPE_CLASS[be16(head, 12)], off + 14, end, want_mpls, src, dst)


def linux_sll(buf: Buffer, off: np.ndarray, end: np.ndarray, want_mpls: bool) -> LinkLayer:
    # 16-byte header: packet type, ARPHRD type, address length, 8 address bytes, protocol.
    et = be16(buf.window(off + 14, 2), 0)
    return _walked(buf, ETHERTYPE_CLASS[et], off + 16, end, want_mpls)


def linux_sll2(buf: Buffer, off: np.ndarray, end: np.ndarray, want_mpls: bool) -> LinkLayer:
    # 20-byte header: protocol first, then reserved, ifindex, ARPHRD, type, address.
    et = be16(buf.window(off, 2), 0)
    return _walked(buf, ETHERTYPE_CLASS[et], off + 20, end, want_mpls)


def _fixed(buf: Buffer, l3: np.ndarray, family: np.ndarray, reason: np.ndarray,
           end: np.ndarray, want_mpls: bool) -> LinkLayer:
    """A link whose header names IP directly: nothing to walk, but the tunnel stage may."""
    kind = family.copy()
    walk = Carriers(buf, end, kind, l3, want_mpls)
    zeros = np.zeros(l3.shape[0], dtype=np.uint64)
    return LinkLayer(l3, family, reason, walk, zeros, zeros.copy())


def raw_ip(buf: Buffer, off: np.ndarray, end: np.ndarray, linktype: int,
           want_mpls: bool) -> LinkLayer:
    n = off.shape[0]
    family = np.full(n, {lt.IPV4: 4, lt.IPV6: 6}.get(linktype, 0), dtype=np.uint8)
    return _fixed(buf, off.copy(), family, np.zeros(n, dtype=np.uint8), end, want_mpls)


def loopback(buf: Buffer, off: np.ndarray, end: np.ndarray, linktype: int,
             want_mpls: bool) -> LinkLayer:
    """BSD null (host byte order) and OpenBSD loop (network order) 4-byte family headers."""
    word = np.ascontiguousarray(buf.window(off, 4))
    be = word.view(">u4")[:, 0]
    le = word.view("<u4")[:, 0]
    # DLT_NULL's order is the writer's, unknown to us; the family values are tiny, so
    # whichever order yields a known family is the right one.
    candidates = (be,) if linktype == lt.LOOP else (be, le)
    family = np.zeros(off.shape[0], dtype=np.uint8)
    for value in candidates:
        family[(family == 0) & np.isin(value, lt.AF_INET)] = 4
        family[(family == 0) & np.isin(value, lt.AF_INET6)] = 6
    reason = np.where(family == 0, r.NON_IP, r.OK).astype(np.uint8)
    reason[off + 4 > end] = r.TOO_SHORT
    return _fixed(buf, off + 4, family, reason, end, want_mpls)


def ppp(buf: Buffer, off: np.ndarray, end: np.ndarray, want_mpls: bool) -> LinkLayer:
    """PPP with or without the ff 03 HDLC prefix, with a one- or two-octet protocol field."""
    head = buf.window(off, 4)
    framed = (head[:, 0] == 0xFF) & (head[:, 1] == 0x03)
    start = np.where(framed, 2, 0)
    first = np.where(framed, head[:, 2], head[:, 0])
    compressed = (first & 1) == 1  # RFC 1661 protocol-field compression: odd first octet
    two = np.where(framed, be16(head, 2), be16(head, 0))
    protocol = np.where(compressed, first.astype(np.int32), two)
    l3 = off + start + np.where(compressed, 1, 2)
    return _walked(buf, PPP_CLASS[protocol], l3, end, want_mpls)


def decode_link(buf: Buffer, off: np.ndarray, end: np.ndarray, linktype: int,
                macs: bool = True, mpls: bool = False) -> LinkLayer:
    """``macs``, ``mpls``: whether those columns are wanted (else zeros, as on links without
    them); carriers are opened either way."""
    if linktype == lt.EN10MB:
        return ethernet(buf, off, end, macs, mpls)
    if linktype == lt.LINUX_SLL:
        return linux_sll(buf, off, end, mpls)
    if linktype == lt.LINUX_SLL2:
        return linux_sll2(buf, off, end, mpls)
    if linktype in lt.RAW_LINKS:
        return raw_ip(buf, off, end, linktype, mpls)
    if linktype == lt.PPP:
        return ppp(buf, off, end, mpls)
    if linktype in (lt.NULL, lt.LOOP):
        return loopback(buf, off, end, linktype, mpls)
    raise ValueError(f"unsupported link type {linktype}")  # open_* rejects these first
