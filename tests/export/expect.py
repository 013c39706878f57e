"""What a reference decoder should show for exported records, normalised for comparison.

Both sides become tuples of plain values: addresses as text, times as milliseconds since the
epoch, ICMP as type * 256 + code, so a tshark or nfdump record compares with the RecordBatch row
it came from with ``==``.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from probe.cache.records import RecordBatch

FIELDS = ("src", "dst", "proto", "sport", "dport", "icmp", "start_ms", "end_ms", "packets",
          "octets", "flags")


def _addr(v: int | bytes) -> str:
    return str(ipaddress.ip_address(v if isinstance(v, int) else bytes(v)))


def batch_rows(b: RecordBatch, v5: bool = False) -> list[tuple]:
    """One tuple per record of ``b`` in FIELDS order."""
    c = b.columns
    v4 = b.ip_version == 4
    src = c["sourceIPv4Address" if v4 else "sourceIPv6Address"]
    dst = c["destinationIPv4Address" if v4 else "destinationIPv6Address"]
    icmp = c["icmpTypeCodeIPv4" if v4 else "icmpTypeCodeIPv6"]
    out = []
    for i in range(len(b)):
        proto = int(c["protocolIdentifier"][i])
        dport = int(c["destinationTransportPort"][i])
        is_icmp = proto in (1, 58)
        if v5 and is_icmp:
            dport = int(icmp[i])
        out.append((_addr(int(src[i]) if v4 else bytes(src[i])),
                    _addr(int(dst[i]) if v4 else bytes(dst[i])), proto,
                    int(c["sourceTransportPort"][i]), dport,
                    0 if v5 else int(icmp[i]),
                    int(c["_start_us"][i]) // 1000, int(c["_end_us"][i]) // 1000,
                    int(c["_packets"][i]), int(c["_octets"][i]),
                    int(c["tcpControlBits"][i]) & (0xFF if v5 else 0xFFFF)))
    return out


def tshark_time_ms(s: str) -> int:
    """'Nov 14, 2023 22:13:48.514000000 UTC' -> ms since the epoch."""
    main, _, rest = s.rpartition(".")
    frac = rest.split()[0]
    secs = int(datetime.strptime(main, "%b %d, %Y %H:%M:%S").replace(tzinfo=UTC).timestamp())
    return secs * 1000 + int(frac[:3])


def _secs_ms(s: str) -> int:
    whole, _, frac = s.partition(".")
    return int(whole) * 1000 + int((frac + "000")[:3])


def tshark_row(r: dict[str, str]) -> tuple:
    """A tshark-decoded flow (``peers.tshark_flows``) in FIELDS order."""
    v6 = "cflow.srcaddrv6" in r
    src = r["cflow.srcaddrv6" if v6 else "cflow.srcaddr"]
    dst = r["cflow.dstaddrv6" if v6 else "cflow.dstaddr"]
    if r["hdr.cflow.version"] == "5":
        boot = int(r["hdr.cflow.unix_secs"]) * 1000 + int(r["hdr.cflow.unix_nsecs"]) // 1_000_000 \
            - _secs_ms(r["hdr.cflow.sysuptime"])
        start = boot + _secs_ms(r["cflow.timestart"])
        end = boot + _secs_ms(r["cflow.timeend"])
        icmp = 0
    else:
        start = tshark_time_ms(r["cflow.abstimestart"])
        end = tshark_time_ms(r["cflow.abstimeend"])
        if v6 and "cflow.icmp_ipv6_type" in r:
            icmp = int(r["cflow.icmp_ipv6_type"]) * 256 + int(r["cflow.icmp_ipv6_code"])
        else:
            icmp = int(r["cflow.icmp_type_code_ipv4"], 16)
    return (str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)),
            int(r["cflow.protocol"]), int(r["cflow.srcport"]), int(r["cflow.dstport"]), icmp,
            start, end, int(r["cflow.packets"]), int(r["cflow.octets"]),
            int(r["cflow.tcpflags"], 16))


def _iso_ms(s: str) -> int:
    main, _, frac = s.partition(".")
    secs = int(datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    return secs * 1000 + int((frac + "000")[:3])


def nfdump_row(r: dict) -> tuple:
    """An nfdump JSON flow (TZ=UTC) in FIELDS order; TCP flags as nfdump keeps them (8 bits)."""
    v6 = "src6_addr" in r
    proto = int(r["proto"])
    icmp = proto in (1, 58)
    flags = sum(1 << (7 - i) for i, ch in enumerate(r.get("tcp_flags", "........")) if ch != ".")
    return (str(ipaddress.ip_address(r["src6_addr" if v6 else "src4_addr"])),
            str(ipaddress.ip_address(r["dst6_addr" if v6 else "dst4_addr"])), proto,
            0 if icmp else int(r["src_port"]), 0 if icmp else int(r["dst_port"]),
            int(r["icmp_type"]) * 256 + int(r["icmp_code"]) if icmp else 0,
            _iso_ms(r["first"]), _iso_ms(r["last"]), int(r["in_packets"]), int(r["in_bytes"]),
            flags)


def with_8bit_flags(rows: list[tuple]) -> list[tuple]:
    return [(*r[:-1], r[-1] & 0xFF) for r in rows]
