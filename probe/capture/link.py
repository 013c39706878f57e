"""Link layer, vectorised: where each packet's IP header starts and which IP it claims to be.

One function per link type family, all returning a ``LinkLayer`` whose columns line up with
the batch. ``family`` is 4 or 6 when the link header names the IP version, 0 when only the IP
header can tell (raw IP links).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.branchless import keep
from probe.capture import linktypes as lt
from probe.capture import reasons as r
from probe.capture.gather import Buffer, be16, macs

# Ethertype -> what it means here, as one table lookup per packet instead of several compares.
_OTHER, _V4, _V6, _TAG, _UNOPENED = 0, 4, 6, 1, 2
_ETHERTYPE_CLASS = np.zeros(1 << 16, dtype=np.uint8)
_ETHERTYPE_CLASS[lt.ETHERTYPE_IPV4] = _V4
_ETHERTYPE_CLASS[lt.ETHERTYPE_IPV6] = _V6
_ETHERTYPE_CLASS[list(lt.VLAN_TPIDS)] = _TAG
_ETHERTYPE_CLASS[list(lt.UNOPENED_CARRIERS)] = _UNOPENED


@dataclass(slots=True)
class LinkLayer:
    l3: np.ndarray  # int64 absolute offset of the IP header in the buffer
    family: np.ndarray  # uint8: 4, 6, or 0 = decide from the version nibble
    reason: np.ndarray  # uint8 reason code, 0 = carry on
    vlan_id: np.ndarray  # uint16 outermost VID
    src_mac: np.ndarray  # uint64
    dst_mac: np.ndarray  # uint64


def _ethertype_payload(
    buf: Buffer, et: np.ndarray, p: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Skip VLAN tags after an ethertype read just before ``p``; classify what follows.

    Returns (l3 offset, family, reason, outermost VID).
    """
    n = et.shape[0]
    vlan = np.zeros(n, dtype=np.uint16)
    kind = _ETHERTYPE_CLASS[et]
    rows = np.flatnonzero(kind == _TAG)
    if rows.size:  # only tagged rows are touched, one tag level per pass
        p = p.copy()
        vid = be16(buf.window(p[rows], 2), 0) & 0x0FFF
        vlan[rows] = vid  # the outermost tag
        for _ in range(lt.MAX_VLAN_TAGS):
            kind[rows] = _ETHERTYPE_CLASS[be16(buf.window(p[rows] + 2, 2), 0)]
            p[rows] += 4
            rows = rows[kind[rows] == _TAG]
            if not rows.size:
                break
    # _V4/_V6 are the IP versions themselves; everything else is not IP we open.
    ip = (kind == _V4) | (kind == _V6)
    family = keep(ip, kind)
    reason = keep(~ip, np.full(n, r.NON_IP, np.uint8))  # r.OK is 0
    if not ip.all():
        reason[(kind == _TAG) | (kind == _UNOPENED)] = r.UNSUPPORTED_LINK
    # The ethertype that decided the row sits in the two bytes before p: it must be captured.
    reason[p > end] = r.TOO_SHORT
    return p, family, reason, vlan


def ethernet(buf: Buffer, off: np.ndarray, end: np.ndarray, want_macs: bool = True
             ) -> LinkLayer:
    if not want_macs:  # only the ethertype: a 2-octet window instead of 16
        et = be16(buf.window(off + 12, 2), 0)
        return _no_mac(*_ethertype_payload(buf, et, off + 14, end))
    head = buf.window(off, 16)
    l3, family, reason, vlan = _ethertype_payload(buf, be16(head, 12), off + 14, end)
    src, dst = macs(head)
    return LinkLayer(l3, family, reason, vlan, src, dst)


def linux_sll(buf: Buffer, off: np.ndarray, end: np.ndarray) -> LinkLayer:
    # 16-byte header: packet type, ARPHRD type, address length, 8 address bytes, protocol.
    et = be16(buf.window(off + 14, 2), 0)
    return _no_mac(*_ethertype_payload(buf, et, off + 16, end))


def linux_sll2(buf: Buffer, off: np.ndarray, end: np.ndarray) -> LinkLayer:
    # 20-byte header: protocol first, then reserved, ifindex, ARPHRD, type, address.
    et = be16(buf.window(off, 2), 0)
    return _no_mac(*_ethertype_payload(buf, et, off + 20, end))


def raw_ip(off: np.ndarray, linktype: int) -> LinkLayer:
    n = off.shape[0]
    family = np.full(n, {lt.IPV4: 4, lt.IPV6: 6}.get(linktype, 0), dtype=np.uint8)
    return _no_mac(off.copy(), family, np.zeros(n, dtype=np.uint8), np.zeros(n, np.uint16))


def loopback(buf: Buffer, off: np.ndarray, end: np.ndarray, linktype: int) -> LinkLayer:
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
    return _no_mac(off + 4, family, reason, np.zeros(off.shape[0], np.uint16))


def ppp(buf: Buffer, off: np.ndarray, end: np.ndarray) -> LinkLayer:
    """PPP with or without the ff 03 HDLC prefix, with a one- or two-octet protocol field."""
    head = buf.window(off, 4)
    framed = (head[:, 0] == 0xFF) & (head[:, 1] == 0x03)
    start = np.where(framed, 2, 0)
    first = np.where(framed, head[:, 2], head[:, 0])
    compressed = (first & 1) == 1  # RFC 1661 protocol-field compression: odd first octet
    two = np.where(framed, be16(head, 2), be16(head, 0))
    protocol = np.where(compressed, first.astype(np.int32), two)
    l3 = off + start + np.where(compressed, 1, 2)
    family = np.zeros(off.shape[0], dtype=np.uint8)
    family[protocol == lt.PPP_IPV4] = 4
    family[protocol == lt.PPP_IPV6] = 6
    reason = np.where(family == 0, r.NON_IP, r.OK).astype(np.uint8)
    reason[np.isin(protocol, lt.PPP_MPLS)] = r.UNSUPPORTED_LINK
    reason[l3 > end] = r.TOO_SHORT
    return _no_mac(l3, family, reason, np.zeros(off.shape[0], np.uint16))


def _no_mac(l3: np.ndarray, family: np.ndarray, reason: np.ndarray, vlan: np.ndarray) -> LinkLayer:
    zeros = np.zeros(l3.shape[0], dtype=np.uint64)
    return LinkLayer(l3, family, reason, vlan, zeros, zeros.copy())


def decode_link(buf: Buffer, off: np.ndarray, end: np.ndarray, linktype: int,
                macs: bool = True) -> LinkLayer:
    """``macs``: whether the MAC columns are wanted (else zeros, as on links without MACs)."""
    if linktype == lt.EN10MB:
        return ethernet(buf, off, end, macs)
    if linktype == lt.LINUX_SLL:
        return linux_sll(buf, off, end)
    if linktype == lt.LINUX_SLL2:
        return linux_sll2(buf, off, end)
    if linktype in lt.RAW_LINKS:
        return raw_ip(off, linktype)
    if linktype == lt.PPP:
        return ppp(buf, off, end)
    if linktype in (lt.NULL, lt.LOOP):
        return loopback(buf, off, end, linktype)
    raise ValueError(f"unsupported link type {linktype}")  # open_* rejects these first
