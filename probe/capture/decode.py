"""Decode one capture batch into a PacketBatch: numpy over all packets, Python only for the rare.

Stages run over the whole batch: link layer and carriers (``link``: tags, MPLS, PPPoE), IP header
(``ip``, with IPv6 extension chains walked one by one), the tunnels the Observation Point opens
(``tunnels``: their inner packets replace the outer ones row by row), then the upper layer.

Decisions, each checked against softflowd 1.1.0 and tshark 4.0 on the same captures:

* ``ip_len`` is the length the IP header states (IPv4 total length, 40 + IPv6 payload
  length), RFC 7012's octet count: Ethernet padding and snaplen truncation do not change it
  (softflowd counts the frame after the link header, so padded frames differ by design).
* Ports are read from whatever part of the transport header was captured, as long as their
  4 octets are there (TCP, UDP, UDP-Lite and SCTP all start with them) inside both the capture
  and the IP packet; TCP flags need the first 14 octets, ICMP type/code the first 2. A packet
  cut before them is still metered, with those fields 0. So IPv6/TCP frames cut at 64 octets
  (``pcaps/snaplen64.pcap``: 14 + 40 + 10) show their ports, as tshark and pmacctd read them;
  softflowd wants the whole 20-octet header and shows 0.
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

from collections.abc import Callable, Collection, Mapping

import numpy as np

from probe.branchless import keep, pick
from probe.capture import reasons as r
from probe.capture.batch import COLUMNS, PAYLOAD_HEAD, DecodeStats, PacketBatch, shape
from probe.capture.gather import Buffer, be16
from probe.capture.ip import ip_layer
from probe.capture.link import decode_link

TCP, UDP, ICMP, ICMPV6, SCTP, UDPLITE = 6, 17, 1, 58, 132, 136

# Protocols whose header starts with the source and destination ports (4 octets).
_PORTED = np.zeros(256, dtype=bool)
_PORTED[[TCP, UDP, SCTP, UDPLITE]] = True
_PORTS, _TCP_FLAGS, _ICMP_HEADER = 4, 14, 2


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


def _octets(n: np.ndarray) -> np.ndarray:
    """A count of octets as the _len columns hold it: 0..65535."""
    return np.clip(n, 0, 0xFFFF).astype(np.uint16)


def decode_batch(
    buf: bytes, meta: np.ndarray | bytes, linktype: int, stats: DecodeStats,
    columns: Collection[str] | None = None, tunnels: frozenset[str] = frozenset(),
    widths: Mapping[str, int] | None = None,
) -> PacketBatch:
    """Decode packets ``meta`` describes (rows: sec, usec, offset, caplen) within ``buf``.

    ``meta`` is an (n, 4) uint32 array or pcapy-ng's packed table itself. ``columns``: the
    PacketBatch columns to fill (what the configuration meters,
    ``probe.cache.base.columns_for_point``); the others are zeros. Which packets decode, and
    why the others do not, is the same. ``tunnels``: the kinds to open
    (``probe.capture.tunnels.SWITCHES``); their packets are metered as the inner packet.
    ``widths``: how many octets of each packet section (``batch.SECTIONS``) to keep (none
    when not given); the IP sections are the metered (inner) packet's.
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

    def width(name: str) -> int:
        return shape(name, widths)[0]

    link = decode_link(mem, off, end, linktype, macs="src_mac" in want or "dst_mac" in want,
                       mpls="mpls_labels" in want)
    reason = link.reason
    hdr = ip_layer(mem, link.l3, end, link.family, reason)
    outer = None
    if tunnels:  # loaded only then: most observation points open none
        from probe.capture.tunnels import open_tunnels

        outer = open_tunnels(mem, hdr, end, reason, link.carriers, tunnels,
                             addresses="outer_src" in want or "outer_dst" in want)
    ip, p, l4, proto, family = hdr.ip, hdr.p, hdr.l4, hdr.proto, hdr.family
    is6 = family == 6
    v4 = ~is6
    first, b1 = ip[:, 0], ip[:, 1]

    # --- upper layer: one 14-octet window covers ports, ICMP type/code and TCP flags.
    ok = reason == r.OK
    l4_end = np.minimum(end, hdr.ip_end)
    has_l4 = ok & (hdr.fragment != 2)
    ported = has_l4 & _PORTED[proto] & (l4 + _PORTS <= l4_end)
    flagged = ported & (proto == TCP) & (l4 + _TCP_FLAGS <= l4_end)
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
        "ip_len": lambda: (hdr.ip_end - p).astype(np.uint32),
        "tcp_flags": lambda: keep(
            flagged, ((upper[:, 12].astype(np.uint16) & 1) << 8) | upper[:, 13]
        ).astype(np.uint16),
        "flow_label": lambda: keep(
            is6, ((b1.astype(np.uint32) & 0x0F) << 16) | be16(ip, 2).astype(np.uint32)
        ).astype(np.uint32),
        "frag_id": lambda: hdr.frag_id,
        "fragment": lambda: hdr.fragment,
        "next_header": lambda: keep(is6, ip[:, 6]),
        "vlan_id": lambda: link.carriers.vlan,
        "src_mac": lambda: link.src_mac,
        "dst_mac": lambda: link.dst_mac,
        "mpls_labels": lambda: link.carriers.mpls,
        "l3_offset": lambda: (p - off).astype(np.uint32),
        "l4_offset": lambda: (l4 - off).astype(np.uint32),
        "ip_word1": lambda: ((be16(ip, 4) << 16) | be16(ip, 6)).astype(np.uint32),
        "payload_head": lambda: _payload_head(mem, hdr.payload, l4_end),
        "payload_head_len": lambda: np.clip(l4_end - hdr.payload, 0,
                                            PAYLOAD_HEAD).astype(np.uint8),
        "frame_len": lambda: (np.maximum(end, hdr.ip_end) - off).astype(np.uint32),
        "frame_section": lambda: mem.section(off, end - off, width("frame_section")),
        "frame_section_len": lambda: _octets(end - off),
        "ip_section": lambda: mem.section(p, l4_end - p, width("ip_section")),
        "ip_section_len": lambda: _octets(l4_end - p),
        "payload_section": lambda: mem.section(hdr.payload, l4_end - hdr.payload,
                                               width("payload_section")),
        "payload_section_len": lambda: _octets(l4_end - hdr.payload),
    }
    if outer is not None:
        make.update({"tunnel_kind": lambda: outer.kind, "tunnel_id": lambda: outer.tunnel_id,
                     "outer_version": lambda: outer.version, "outer_src": lambda: outer.src,
                     "outer_dst": lambda: outer.dst})
    decoded = None if kept == n else reason == r.OK
    columns = {}
    for name, (dtype, _) in COLUMNS.items():
        value = make[name]() if name in want and name in make else None
        if value is None:
            columns[name] = _zeros(kept, dtype, shape(name, widths))
            continue
        columns[name] = value if decoded is None else value[decoded]
    return PacketBatch(**columns)


def _zeros(rows: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A column nobody reads. A wide one (addresses, labels, payload) is ``rows`` read-only
    views of one zero row: ``np.zeros`` cost a cleared allocation per batch (replay keeps freed
    memory in glibc's heap, so calloc clears it), 2 MB per 16k-packet piece once MPLS labels
    and outer addresses were columns too. A scalar column stays a real array: the flow table's
    C core takes some (TTL) whether a layout reads them or not."""
    if not shape:
        return np.zeros(rows, dtype)
    return np.broadcast_to(np.zeros(shape, dtype), (rows, *shape))
