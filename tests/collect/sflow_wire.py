"""sFlow v5 datagrams written from the specification (sflow_version_5.txt), for the tests.

Independent of ``probe.collect.sflow``: every structure is packed here from the XDR text of
the spec, so a decoder that misreads the spec disagrees with these bytes.
"""

from __future__ import annotations

import ipaddress
import struct

Item = tuple[int, bytes]  # (data_format, body)


def opaque(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


def address(ip: str | None) -> bytes:
    if ip is None:
        return struct.pack(">I", 0)
    a = ipaddress.ip_address(ip)
    return struct.pack(">I", 1 if a.version == 4 else 2) + a.packed


def _items(items: list[Item]) -> bytes:
    return struct.pack(">I", len(items)) + b"".join(
        struct.pack(">I", fmt) + opaque(body) for fmt, body in items)


def datagram(agent: str, seq: int, samples: list[Item], sub_agent: int = 0,
             uptime: int = 1000) -> bytes:
    return (struct.pack(">I", 5) + address(agent) + struct.pack(">III", sub_agent, seq, uptime)
            + _items(samples))


def flow_sample(records: list[Item], *, seq: int = 1, source: int = 3, rate: int = 512,
                pool: int = 0, drops: int = 0, in_if: int = 3, out_if: int = 7) -> Item:
    return 1, struct.pack(">IIIIIII", seq, source, rate, pool, drops, in_if, out_if) + \
        _items(records)


def flow_sample_expanded(records: list[Item], *, seq: int = 1, source: tuple[int, int] = (0, 3),
                         rate: int = 256, in_if: tuple[int, int] = (0, 70000),
                         out_if: tuple[int, int] = (0, 80000)) -> Item:
    return 3, struct.pack(">IIIIIIIIII", seq, *source, rate, 0, 0, *in_if, *out_if) + \
        _items(records)


def counter_sample(records: list[Item], *, seq: int = 1, source: int = 5) -> Item:
    return 2, struct.pack(">II", seq, source) + _items(records)


def raw_header(frame: bytes, *, protocol: int = 1, frame_length: int | None = None,
               stripped: int = 4, keep: int = 128) -> Item:
    head = frame[:keep]
    length = len(frame) + stripped if frame_length is None else frame_length
    return 1, struct.pack(">III", protocol, length, stripped) + opaque(head)


def sampled_ipv4(src: str, dst: str, proto: int, sport: int, dport: int, *, length: int = 100,
                 flags: int = 0, tos: int = 0) -> Item:
    return 3, struct.pack(">II4s4sIIII", length, proto, ipaddress.IPv4Address(src).packed,
                          ipaddress.IPv4Address(dst).packed, sport, dport, flags, tos)


def extended_switch(src_vlan: int, dst_vlan: int) -> Item:
    return 1001, struct.pack(">IIII", src_vlan, 0, dst_vlan, 0)


def extended_router(next_hop: str, src_mask: int, dst_mask: int) -> Item:
    return 1002, address(next_hop) + struct.pack(">II", src_mask, dst_mask)


def extended_gateway(next_hop: str, own_as: int, src_as: int, path: list[int],
                     communities: list[int]) -> Item:
    body = address(next_hop) + struct.pack(">III", own_as, src_as, 0)
    body += struct.pack(">I", 1 if path else 0)
    if path:
        body += struct.pack(f">II{len(path)}I", 2, len(path), *path)  # one AS_SEQUENCE
    body += struct.pack(f">I{len(communities)}I", len(communities), *communities)
    return 1003, body + struct.pack(">I", 100)  # localpref


def if_counters(index: int, in_octets: int, out_octets: int) -> Item:
    return 1, struct.pack(">IIQIIQIIIIIIQIIIIII", index, 6, 10**9, 1, 3, in_octets,
                          10, 0, 0, 0, 0, 0, out_octets, 20, 0, 0, 0, 0, 0)
