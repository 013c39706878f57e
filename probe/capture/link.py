"""Link layer, vectorised: where each packet's IP header starts and which IP it claims to be.

One function per link type family, all returning a ``LinkLayer`` whose columns line up with
the batch. ``family`` is 4 or 6 when the link header names the IP version, 0 when only the IP
header can tell (raw IP links).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.capture import linktypes as lt
from probe.capture import reasons as r
from probe.capture.gather import mac, u8, u16


@dataclass(slots=True)
class LinkLayer:
    l3: np.ndarray  # int64 absolute offset of the IP header in the buffer
    family: np.ndarray  # uint8: 4, 6, or 0 = decide from the version nibble
    reason: np.ndarray  # uint8 reason code, 0 = carry on
    vlan_id: np.ndarray  # uint16 outermost VID
    src_mac: np.ndarray  # uint64
    dst_mac: np.ndarray  # uint64


def _ethertype_payload(
    b: np.ndarray, et: np.ndarray, p: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Skip VLAN tags after an ethertype read just before ``p``; classify what follows.

    Returns (l3 offset, family, reason, outermost VID).
    """
    n = et.shape[0]
    vlan = np.zeros(n, dtype=np.uint16)
    seen = np.zeros(n, dtype=bool)
    p = p.copy()
    for _ in range(lt.MAX_VLAN_TAGS):
        tagged = np.isin(et, lt.VLAN_TPIDS)
        if not tagged.any():
            break
        vid = (u16(b, p) & 0x0FFF).astype(np.uint16)
        first = tagged & ~seen
        vlan = np.where(first, vid, vlan)
        seen |= tagged
        et = np.where(tagged, u16(b, p + 2), et)
        p = np.where(tagged, p + 4, p)
    family = np.zeros(n, dtype=np.uint8)
    family[et == lt.ETHERTYPE_IPV4] = 4
    family[et == lt.ETHERTYPE_IPV6] = 6
    reason = np.where(family == 0, r.NON_IP, r.OK).astype(np.uint8)
    deep_or_unopened = np.isin(et, lt.VLAN_TPIDS) | np.isin(et, lt.UNOPENED_CARRIERS)
    reason[deep_or_unopened] = r.UNSUPPORTED_LINK
    # The ethertype that decided the row sits in the two bytes before p: it must be captured.
    reason[p > end] = r.TOO_SHORT
    return p, family, reason, vlan


def ethernet(b: np.ndarray, off: np.ndarray, end: np.ndarray) -> LinkLayer:
    l3, family, reason, vlan = _ethertype_payload(b, u16(b, off + 12), off + 14, end)
    return LinkLayer(l3, family, reason, vlan, mac(b, off + 6), mac(b, off))


def linux_sll(b: np.ndarray, off: np.ndarray, end: np.ndarray) -> LinkLayer:
    # 16-byte header: packet type, ARPHRD type, address length, 8 address bytes, protocol.
    l3, family, reason, vlan = _ethertype_payload(b, u16(b, off + 14), off + 16, end)
    return _no_mac(l3, family, reason, vlan)


def linux_sll2(b: np.ndarray, off: np.ndarray, end: np.ndarray) -> LinkLayer:
    # 20-byte header: protocol first, then reserved, ifindex, ARPHRD, type, address.
    et = u16(b, off)
    l3, family, reason, vlan = _ethertype_payload(b, et, off + 20, end)
    return _no_mac(l3, family, reason, vlan)


def raw_ip(b: np.ndarray, off: np.ndarray, end: np.ndarray, linktype: int) -> LinkLayer:
    n = off.shape[0]
    fam = {lt.IPV4: 4, lt.IPV6: 6}.get(linktype, 0)
    family = np.full(n, fam, dtype=np.uint8)
    return _no_mac(off.copy(), family, np.zeros(n, dtype=np.uint8), np.zeros(n, np.uint16))


def loopback(b: np.ndarray, off: np.ndarray, end: np.ndarray, linktype: int) -> LinkLayer:
    """BSD null (host byte order) and OpenBSD loop (network order) 4-byte family headers."""
    octets = [u8(b, off + k).astype(np.uint32) for k in range(4)]
    be = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
    le = (octets[3] << 24) | (octets[2] << 16) | (octets[1] << 8) | octets[0]
    # DLT_NULL's order is the writer's, unknown to us; the family values are tiny, so
    # whichever order yields a known family is the right one.
    cands = (be,) if linktype == lt.LOOP else (be, le)
    family = np.zeros(off.shape[0], dtype=np.uint8)
    for v in cands:
        family[(family == 0) & np.isin(v, lt.AF_INET)] = 4
        family[(family == 0) & np.isin(v, lt.AF_INET6)] = 6
    reason = np.where(family == 0, r.NON_IP, r.OK).astype(np.uint8)
    reason[off + 4 > end] = r.TOO_SHORT
    return _no_mac(off + 4, family, reason, np.zeros(off.shape[0], np.uint16))


def _no_mac(l3: np.ndarray, family: np.ndarray, reason: np.ndarray, vlan: np.ndarray) -> LinkLayer:
    zeros = np.zeros(l3.shape[0], dtype=np.uint64)
    return LinkLayer(l3, family, reason, vlan, zeros, zeros.copy())


def decode_link(b: np.ndarray, off: np.ndarray, end: np.ndarray, linktype: int) -> LinkLayer:
    if linktype == lt.EN10MB:
        return ethernet(b, off, end)
    if linktype == lt.LINUX_SLL:
        return linux_sll(b, off, end)
    if linktype == lt.LINUX_SLL2:
        return linux_sll2(b, off, end)
    if linktype in lt.RAW_LINKS:
        return raw_ip(b, off, end, linktype)
    if linktype in (lt.NULL, lt.LOOP):
        return loopback(b, off, end, linktype)
    raise ValueError(f"unsupported link type {linktype}")  # open_* rejects these first
