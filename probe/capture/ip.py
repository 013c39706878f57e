"""The IP layer, vectorised: one header per packet, and where its upper layer starts.

Used for the packets as captured and again for the inner packets of opened tunnels
(``probe.capture.tunnels``), whose fields then replace the outer ones row by row (``put``).
IPv6 packets with extension headers are walked one by one (``ipv6ext``) and their results
written back into the same rows, so capture order holds and the result does not depend on how
the stream was cut into batches.
"""

from __future__ import annotations

import numpy as np

from probe.branchless import keep, pick
from probe.capture import reasons as r
from probe.capture.gather import Buffer, be16
from probe.capture.ipv6ext import EXTENSION_HEADERS, walk

_IS_EXTENSION = np.zeros(256, dtype=bool)
_IS_EXTENSION[list(EXTENSION_HEADERS)] = True


def flag(reason: np.ndarray, where: np.ndarray, code: int) -> None:
    """Give ``code`` to rows that still decode and match ``where`` (first reason wins)."""
    reason[(reason == r.OK) & where] = code


class IpLayer:
    """Per-packet IP header fields (rows line up with the batch or with a subset of it).

    A plain class, not a dataclass: every process that decodes imports this module, and a
    dataclass costs its start-up a code generation."""

    __slots__ = ("family", "frag_id", "fragment", "ip", "ip_end", "l4", "p", "payload",
                 "proto")

    def __init__(self, p: np.ndarray, ip: np.ndarray, family: np.ndarray, proto: np.ndarray,
                 l4: np.ndarray, payload: np.ndarray, ip_end: np.ndarray,
                 fragment: np.ndarray, frag_id: np.ndarray) -> None:
        self.p = p  # offset of the IP header
        self.ip = ip  # (n, 40) octets from p: the fixed IPv6 header or IPv4's first 40
        self.family = family  # uint8 4 or 6
        self.proto = proto  # upper-layer protocol (after the IPv6 extension chain)
        self.l4 = l4  # offset of the upper-layer header
        self.payload = payload  # offset of the IP payload (extension headers are part of it)
        self.ip_end = ip_end  # where the IP header's length says the packet ends
        self.fragment = fragment  # uint8: 0 none, 1 first fragment, 2 non-first fragment
        self.frag_id = frag_id  # uint32 IPv4 identification / IPv6 fragment header id

    def put(self, rows: np.ndarray, inner: IpLayer) -> None:
        """Replace ``rows`` with ``inner``'s fields (an opened tunnel's inner packets)."""
        for name in self.__slots__:
            getattr(self, name)[rows] = getattr(inner, name)


def ip_layer(mem: Buffer, p: np.ndarray, end: np.ndarray, hint: np.ndarray,
             reason: np.ndarray) -> IpLayer:
    """Decode the IP headers at ``p``; ``hint`` is the family the layer below names (0: take
    the version nibble). ``reason`` is updated in place for packets that cannot be metered."""
    ip = mem.window(p, 40)
    flag(reason, p + 1 > end, r.TOO_SHORT)
    first = ip[:, 0]
    version = first >> 4
    family = pick(hint == 0, version, hint).astype(np.uint8)
    flag(reason, (version != family) | ((family != 4) & (family != 6)), r.BAD_VERSION)
    is6 = family == 6
    v4 = ~is6
    ihl = (first & 0x0F).astype(p.dtype) * 4
    total = be16(ip, 2)
    total = pick(total == 0, end - p, total)  # TSO / BIG TCP: the frame says how long
    flag(reason, v4 & (p + 20 > end), r.TOO_SHORT)
    flag(reason, v4 & (ihl < 20), r.BAD_HEADER_LENGTH)
    flag(reason, v4 & (p + ihl > end), r.TOO_SHORT)
    flag(reason, v4 & (total < ihl), r.BAD_HEADER_LENGTH)
    flag(reason, is6 & (p + 40 > end), r.TOO_SHORT)

    payload_len = be16(ip, 4)  # IPv4: identification
    frag_field = be16(ip, 6)
    proto = pick(is6, ip[:, 6], ip[:, 9])
    l4 = pick(is6, p + 40, p + ihl)
    # A zero IPv6 payload length is a jumbogram or Linux BIG TCP (which may omit the jumbo
    # hop-by-hop option on tunnels): the frame says how long.
    ip_end = pick(is6, pick(payload_len == 0, end, p + 40 + payload_len), p + total)
    # IPv4 only: 2 = a later fragment (offset set), 1 = a first one (more fragments), 0 = none
    later = (frag_field & 0x1FFF) != 0
    more = (frag_field & 0x2000) != 0
    fragment = keep(v4, np.uint8(2) * later + (more & ~later))
    frag_id = keep(v4, payload_len).astype(np.uint32)

    # --- slow path: IPv6 extension-header chains, walked per packet, written back in place.
    payload = l4  # the IP payload: extension headers are part of it (RFC 8200 §3)
    chain = np.flatnonzero((reason == r.OK) & is6 & _IS_EXTENSION[proto])
    if chain.size:
        payload = l4.copy()  # the walk moves l4 to the upper layer; the payload stays
        view = memoryview(mem.data)
        for i in chain.tolist():
            up = walk(view, int(proto[i]), int(l4[i]), int(end[i]), int(ip_end[i]))
            if up.reason != r.OK:
                reason[i] = up.reason
                continue
            proto[i], l4[i], fragment[i], frag_id[i] = up.proto, up.l4, up.fragment, up.frag_id
    return IpLayer(p, ip, family, proto, l4, payload, ip_end, fragment, frag_id)
