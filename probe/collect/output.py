"""Writers for decoded flows: JSON lines (for programs) and a text table (for people)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TextIO

from probe.collect.records import Record

_PROTO = {1: "ICMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMPv6", 132: "SCTP"}
_FLAGS = "FSRPAUEC"  # TCP flag bits 0..7: FIN SYN RST PSH ACK URG ECE CWR


class JsonWriter:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, records: list[Record]) -> None:
        self.out.write("".join(json.dumps(r.flow, separators=(",", ":")) + "\n"
                               for r in records))

    def close(self) -> None:
        self.out.flush()


def _time(ns: object) -> str:
    if not isinstance(ns, int) or ns <= 0:
        return "-"
    try:
        t = datetime.fromtimestamp(ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return "-"
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{ns // 1_000_000 % 1000:03d}"


def _endpoint(addr: object, port: object) -> str:
    a = str(addr) if addr is not None else "?"
    if ":" in a:
        a = f"[{a}]"
    return a if port is None else f"{a}:{port}"


def _flags(v: object) -> str:
    if not isinstance(v, int):
        return ""
    return "".join(c if v >> i & 1 else "." for i, c in enumerate(_FLAGS))


class TextWriter:
    """One line per flow as it arrives, totals at the end."""

    HEADER = (f"{'start':<23} {'end':<23} {'proto':<6} {'src':>45}    {'dst':<45} "
              f"{'packets':>9} {'bytes':>12} flags")

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.flows = self.packets = self.bytes = 0
        self._header = False

    def write(self, records: list[Record]) -> None:
        if not self._header:
            self.out.write(self.HEADER + "\n")
            self._header = True
        lines = []
        for r in records:
            f = r.flow
            proto = f.get("proto")
            name = _PROTO.get(proto, str(proto)) if isinstance(proto, int) else "-"
            pk, by = f.get("packets", 0), f.get("bytes", 0)
            self.flows += 1
            self.packets += pk if isinstance(pk, int) else 0
            self.bytes += by if isinstance(by, int) else 0
            lines.append(
                f"{_time(f.get('time_flow_start_ns')):<23} {_time(f.get('time_flow_end_ns')):<23} "
                f"{name:<6} {_endpoint(f.get('src_addr'), f.get('src_port')):>45} -> "
                f"{_endpoint(f.get('dst_addr'), f.get('dst_port')):<45} {pk:>9} {by:>12} "
                f"{_flags(f.get('tcp_flags'))}\n")
        self.out.write("".join(lines))

    def close(self) -> None:
        if not self._header:
            self.out.write(self.HEADER + "\n")
        self.out.write(f"total: {self.flows} flows, {self.packets} packets, {self.bytes} bytes\n")
        self.out.flush()
