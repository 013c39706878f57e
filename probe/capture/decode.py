"""Decode one capture batch into a PacketBatch: numpy over all packets, Python only for the rare.

Stages run over the whole batch: link layer (``link``), IP header, then the upper layer. Between
the IP and upper-layer stages, IPv6 packets with extension headers are walked one by one
(``ipv6ext``) and their results written back into the same rows, so capture order holds and the
result does not depend on how the stream was cut into batches.

Decisions, each checked against softflowd 1.1.0 and tshark 4.0 on the same captures:

* ``ip_len`` is the length the IP header states (IPv4 total length, 40 + IPv6 payload
  length), RFC 7012's octet count: Ethernet padding and snaplen truncation do not change it
  (softflowd counts the frame after the link header, so padded frames differ by design).
* Ports are read only when the whole transport header lies inside both the capture and the IP
  packet (TCP 20, UDP/UDP-Lite 8, SCTP 12 octets; ICMP type/code need 2). A packet whose
  transport header was cut off by the snaplen is still counted, with ports (and flags) 0, which
  is what softflowd does with IPv6/TCP in ``pcaps/snaplen64.pcap`` (14 + 40 + 20 > 64).
* Non-first fragments (IPv4 offset > 0, IPv6 fragment header offset > 0) carry no ports. Their
  protocol is the one the header names (IPv4 protocol, the IPv6 fragment header's next
  header), the same for both families; softflowd reports 0 for IPv6 ones.
* IPv6 extension chains are walked through hop-by-hop, routing, fragment, destination options
  and AH (softflowd stops at AH); ESP, No Next Header and anything else end the walk.
* A zero IPv4 total length (TSO / BIG TCP send-side captures) and a zero IPv6 payload length
  (jumbogram, BIG TCP) mean "as long as the frame": the length is taken from the captured
  bytes, as tshark presumes and softflowd counts. A snaplen-cut frame of that kind
  is undercounted; pcapy-ng's batch read gives no wire length to do better.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np

from probe.branchless import keep, pick
from probe.capture import reasons as r
from probe.capture.batch import COLUMNS, PAYLOAD_HEAD, DecodeStats, PacketBatch
from probe.capture.gather import Buffer, be16
from probe.capture.ipv6ext import EXTENSION_HEADERS, walk
from probe.capture.link import decode_link

TCP, UDP, ICMP, ICMPV6, SCTP, UDPLITE = 6, 17, 1, 58, 132, 136

# Octets of upper-layer header needed before its ports are trusted; 0 = protocol has no ports.
_PORT_HEADER = np.zeros(256, dtype=np.int32)
_PORT_HEADER[[TCP, UDP, SCTP, UDPLITE]] = [20, 8, 12, 8]
_ICMP_HEADER = 2
_IS_EXTENSION = np.zeros(256, dtype=bool)
_IS_EXTENSION[list(EXTENSION_HEADERS)] = True


def _addresses(ip: np.ndarray, is6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source and destination as (n, 16) octets from the IP window, IPv4 in octets 0..3.

    Done on 64-bit words of the 40-octet window (octets 8..39 are four aligned words) rather
    than on (n, 16) octet arrays: four word selects instead of sixteen octet ones. An IPv4
    source (octets 12..15) is the high half of word 1, the destination (16..19) the low half of
    word 2; little-endian words keep octet order on any host.
    """
    words = ip.view("<u8")
    src = np.empty((ip.shape[0], 2), dtype="<u8")
    dst = np.empty((ip.shape[0], 2), dtype="<u8")
    src[:, 0] = pick(is6, words[:, 1], words[:, 1] >> np.uint64(32))
    src[:, 1] = keep(is6, words[:, 2])
    dst[:, 0] = pick(is6, words[:, 3], words[:, 2] & np.uint64(0xFFFFFFFF))
    dst[:, 1] = keep(is6, words[:, 4])
    return src.view(np.uint8), dst.view(np.uint8)


def _payload_head(mem: Buffer, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """The first PAYLOAD_HEAD octets from ``start``, zeros from ``stop`` on (the end of the IP
    packet or of the capture, whichever comes first), so what a packet lacks reads as zero."""
    head = mem.window(start, PAYLOAD_HEAD)
    head[np.arange(PAYLOAD_HEAD) >= (stop - start)[:, None]] = 0
    return head


def _flag(reason: np.ndarray, where: np.ndarray, code: int) -> None:
    """Give ``code`` to rows that still decode and match ``where`` (first reason wins)."""
    reason[(reason == r.OK) & where] = code


def decode_batch(
    buf: bytes, meta: np.ndarray | bytes, linktype: int, stats: DecodeStats,
    columns: Collection[str] | None = None,
) -> PacketBatch:
    """Decode packets ``meta`` describes (rows: sec, usec, offset, caplen) within ``buf``.

    ``meta`` is an (n, 4) uint32 array or pcapy-ng's packed table itself. ``columns``: the
    PacketBatch columns to fill (what the configuration meters,
    ``probe.cache.base.columns_for_point``); the others are zeros. Which packets decode, and
    why the others do not, is the same.
    """
    if isinstance(meta, bytes | bytearray | memoryview):  # next_batch's packed table as is
        meta = np.frombuffer(meta, dtype=np.uint32)
    meta = np.asarray(meta, dtype=np.uint32).reshape(-1, 4)
    n = meta.shape[0]
    stats.packets_read += n
    if n == 0:
        return PacketBatch.empty()
    mem = Buffer(buf)
    # Offsets in 32 bits when the buffer allows: half the memory traffic of int64 columns.
    index = np.int32 if mem.data.size < 2**31 - 2**18 else np.int64
    off = meta[:, 2].astype(index)
    end = off + meta[:, 3].astype(index)

    want = COLUMNS if columns is None else columns
    link = decode_link(mem, off, end, linktype, macs="src_mac" in want or "dst_mac" in want)
    reason = link.reason
    p = link.l3

    # --- IP header: one 40-octet window per packet; each row picks its family's fields.
    ip = mem.window(p, 40)
    _flag(reason, p + 1 > end, r.TOO_SHORT)
    first = ip[:, 0]
    version = first >> 4
    family = pick(link.family == 0, version, link.family).astype(np.uint8)
    _flag(reason, (version != family) | ((family != 4) & (family != 6)), r.BAD_VERSION)
    is6 = family == 6
    v4 = ~is6
    ihl = (first & 0x0F).astype(index) * 4
    total = be16(ip, 2)
    total = pick(total == 0, end - p, total)  # TSO / BIG TCP: the frame says how long
    _flag(reason, v4 & (p + 20 > end), r.TOO_SHORT)
    _flag(reason, v4 & (ihl < 20), r.BAD_HEADER_LENGTH)
    _flag(reason, v4 & (p + ihl > end), r.TOO_SHORT)
    _flag(reason, v4 & (total < ihl), r.BAD_HEADER_LENGTH)
    _flag(reason, is6 & (p + 40 > end), r.TOO_SHORT)

    b1 = ip[:, 1]
    payload_len = be16(ip, 4)  # IPv4: identification
    frag_field = be16(ip, 6)
    proto = pick(is6, ip[:, 6], ip[:, 9])
    l4 = pick(is6, p + 40, p + ihl)
    payload = l4  # the IP payload: extension headers are part of it (RFC 8200 §3)
    # A zero IPv6 payload length is a jumbogram or Linux BIG TCP (which may omit the jumbo
    # hop-by-hop option on tunnels): the frame says how long.
    ip_end = pick(is6, pick(payload_len == 0, end, p + 40 + payload_len), p + total)
    # IPv4 only: 2 = a later fragment (offset set), 1 = a first one (more fragments), 0 = none
    later = (frag_field & 0x1FFF) != 0
    more = (frag_field & 0x2000) != 0
    fragment = keep(v4, np.uint8(2) * later + (more & ~later))
    frag_id = keep(v4, payload_len).astype(np.uint32)

    # --- slow path: IPv6 extension-header chains, walked per packet, written back in place.
    chain = np.flatnonzero((reason == r.OK) & is6 & _IS_EXTENSION[proto])
    if chain.size:
        payload = l4.copy()  # the walk moves l4 to the upper layer; the payload stays
        view = memoryview(buf)
        for i in chain.tolist():
            up = walk(view, int(proto[i]), int(l4[i]), int(end[i]), int(ip_end[i]))
            if up.reason != r.OK:
                reason[i] = up.reason
                continue
            proto[i], l4[i], fragment[i], frag_id[i] = up.proto, up.l4, up.fragment, up.frag_id

    # --- upper layer: one 14-octet window covers ports, ICMP type/code and TCP flags.
    ok = reason == r.OK
    l4_end = np.minimum(end, ip_end)
    has_l4 = ok & (fragment != 2)
    ported = has_l4 & (_PORT_HEADER[proto] > 0) & (l4 + _PORT_HEADER[proto] <= l4_end)
    is_tcp = ported & (proto == TCP)
    is_icmp = (
        has_l4
        & ((is6 & (proto == ICMPV6)) | (v4 & (proto == ICMP)))
        & (l4 + _ICMP_HEADER <= l4_end)
    )
    upper = mem.window(l4, 14)

    src, dst = _addresses(ip, is6) if "src_addr" in want or "dst_addr" in want else (ip, ip)

    counts = np.bincount(reason, minlength=len(r.NAMES) + 1)
    for code, name in r.NAMES.items():
        if counts[code]:
            stats.ignore(name, int(counts[code]))
    kept = int(counts[r.OK])
    stats.packets_decoded += kept

    make: dict[str, Callable[[], np.ndarray]] = {
        "ts_us": lambda: meta[:, 0].astype(np.int64) * 1_000_000 + meta[:, 1],
        "ip_version": lambda: family,
        "src_addr": lambda: src,
        "dst_addr": lambda: dst,
        "proto": lambda: proto,
        "src_port": lambda: keep(ported, be16(upper, 0)).astype(np.uint16),
        "dst_port": lambda: keep(ported, be16(upper, 2)).astype(np.uint16),
        "icmp_type": lambda: keep(is_icmp, upper[:, 0]),
        "icmp_code": lambda: keep(is_icmp, upper[:, 1]),
        "tos": lambda: pick(is6, ((first & 0x0F) << 4) | (b1 >> 4), b1).astype(np.uint8),
        "ttl": lambda: pick(is6, ip[:, 7], ip[:, 8]),
        "ip_len": lambda: (ip_end - p).astype(np.uint32),
        "tcp_flags": lambda: keep(
            is_tcp, ((upper[:, 12].astype(np.uint16) & 1) << 8) | upper[:, 13]
        ).astype(np.uint16),
        "flow_label": lambda: keep(
            is6, ((b1.astype(np.uint32) & 0x0F) << 16) | be16(ip, 2).astype(np.uint32)
        ).astype(np.uint32),
        "frag_id": lambda: frag_id,
        "fragment": lambda: fragment,
        "next_header": lambda: keep(is6, ip[:, 6]),
        "vlan_id": lambda: link.vlan_id,
        "src_mac": lambda: link.src_mac,
        "dst_mac": lambda: link.dst_mac,
        "ip_word1": lambda: ((be16(ip, 4) << 16) | be16(ip, 6)).astype(np.uint32),
        "payload_head": lambda: _payload_head(mem, payload, np.minimum(end, ip_end)),
        "payload_head_len": lambda: np.clip(np.minimum(end, ip_end) - payload, 0,
                                            PAYLOAD_HEAD).astype(np.uint8),
    }
    decoded = None if kept == n else reason == r.OK
    columns = {}
    for name, (dtype, shape) in COLUMNS.items():
        if name not in want:
            columns[name] = np.zeros((kept, *shape), dtype)
            continue
        value = make[name]()
        columns[name] = value if decoded is None else value[decoded]
    return PacketBatch(**columns)
