"""The per-packet slow path: walking an IPv6 extension-header chain to the upper layer.

Chains have data-dependent length and order, so they are walked one packet at a time; they are
rare on real links, which keeps this off the hot path. The walk only finds where the upper layer
starts and what it is; ports and flags are then read for the whole batch at once.
"""

from __future__ import annotations

from typing import NamedTuple

from probe.capture import reasons as r

HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
AUTH = 51
DEST_OPTS = 60
EXTENSION_HEADERS = (HOP_BY_HOP, ROUTING, FRAGMENT, AUTH, DEST_OPTS)
# A chain longer than this is hostile or broken; RFC 8200 expects each header at most twice.
MAX_CHAIN = 16


class UpperLayer(NamedTuple):
    reason: int
    proto: int = 0
    l4: int = 0  # absolute offset of the upper-layer header
    fragment: int = 0  # 0 none, 1 first fragment, 2 non-first fragment
    frag_id: int = 0


def walk(buf: bytes | memoryview, nh: int, q: int, end: int, payload_end: int) -> UpperLayer:
    """Follow extension headers from ``q`` (just after the fixed header) with ``nh`` first.

    ``end`` is where the captured bytes stop, ``payload_end`` where the IPv6 payload length
    says the packet stops; a header crossing the first is too-short, crossing the second is a
    bad header length. ESP (50), No Next Header (59) and anything unknown end the walk: that is
    the upper layer as far as flow keys go.
    """
    fragment = 0
    frag_id = 0
    for _ in range(MAX_CHAIN):
        if nh not in EXTENSION_HEADERS:
            return UpperLayer(r.OK, nh, q, fragment, frag_id)
        if q + 8 > end:
            return UpperLayer(r.TOO_SHORT)
        if nh == FRAGMENT:
            size = 8
            offset_flags = (buf[q + 2] << 8) | buf[q + 3]
            frag_id = int.from_bytes(buf[q + 4 : q + 8], "big")
            if offset_flags & 0xFFF8:
                fragment = 2
            elif offset_flags & 1:
                fragment = 1
        elif nh == AUTH:
            size = (buf[q + 1] + 2) * 4
        else:
            size = (buf[q + 1] + 1) * 8
        if q + size > payload_end:
            return UpperLayer(r.BAD_HEADER_LENGTH)
        if q + size > end:
            return UpperLayer(r.TOO_SHORT)
        nh = buf[q]
        q += size
        if fragment == 2:
            # Later fragments carry no upper-layer header: the flow key stops at the protocol.
            return UpperLayer(r.OK, nh, q, fragment, frag_id)
    return UpperLayer(r.BAD_HEADER_LENGTH)
