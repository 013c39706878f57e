"""A small, independent decoder of what the exporter sends (IPFIX, NetFlow v9 and v5).

Written from the RFCs' figures, not from probe.export, so that encoder bugs do not cancel out.
Values come back as ints (bytes for addresses wider than 8 octets) keyed by IE id.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field


@dataclass
class Message:
    version: int
    header: dict[str, int]
    templates: list[tuple[int, list[tuple[int, int]], int]] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)
    data: list[tuple[int, dict[int, int | bytes]]] = field(default_factory=list)  # (tid, rec)
    options: list[tuple[int, dict[int, int | bytes]]] = field(default_factory=list)


def _value(raw: bytes) -> int | bytes:
    return int.from_bytes(raw, "big") if len(raw) <= 8 else raw


class Decoder:
    """Keeps templates per (version, domain) across messages, as a collector does."""

    def __init__(self) -> None:
        self.templates: dict[tuple[int, int, int], tuple[list[tuple[int, int]], int]] = {}

    def decode(self, msg: bytes) -> Message:
        version = struct.unpack_from(">H", msg)[0]
        if version == 5:
            return _decode_v5(msg)
        if version == 10:
            _, length, t, seq, dom = struct.unpack_from(">HHIII", msg)
            assert length == len(msg), (length, len(msg))
            m = Message(10, {"length": length, "export_time": t, "seq": seq, "domain": dom})
            pos = 16
        elif version == 9:
            _, count, up, secs, seq, dom = struct.unpack_from(">HHIIII", msg)
            m = Message(9, {"count": count, "uptime": up, "unix_secs": secs, "seq": seq,
                            "domain": dom})
            pos = 20
        else:
            raise ValueError(f"version {version}")
        while pos + 4 <= len(msg):
            set_id, set_len = struct.unpack_from(">HH", msg, pos)
            assert set_len >= 4 and pos + set_len <= len(msg), (set_id, set_len)
            self._set(m, version, dom, set_id, msg[pos + 4: pos + set_len])
            pos += set_len
        assert pos == len(msg)
        return m

    def _set(self, m: Message, ver: int, dom: int, set_id: int, body: bytes) -> None:
        p = 0
        if (ver == 10 and set_id in (2, 3)) or (ver == 9 and set_id in (0, 1)):
            options = set_id in (3, 1)
            while len(body) - p >= 4:
                if options and ver == 9:
                    if len(body) - p < 6:
                        break
                    tid, slen, olen = struct.unpack_from(">HHH", body, p)
                    p += 6
                    count, scope = (slen + olen) // 4, slen // 4
                elif options:
                    tid, count = struct.unpack_from(">HH", body, p)
                    p += 4
                    if count == 0:
                        m.withdrawn.append(tid)
                        continue
                    scope = struct.unpack_from(">H", body, p)[0]
                    p += 2
                else:
                    tid, count = struct.unpack_from(">HH", body, p)
                    p += 4
                    scope = 0
                    if count == 0:
                        m.withdrawn.append(tid)
                        continue
                specs = []
                for _ in range(count):
                    ie, ln = struct.unpack_from(">HH", body, p)
                    p += 4
                    if ie & 0x8000 and ver == 10:
                        p += 4
                    specs.append((ie & 0x7FFF if ver == 10 else ie, ln))
                m.templates.append((tid, specs, scope))
                self.templates[(ver, dom, tid)] = (specs, scope)
            return
        specs, scope = self.templates[(ver, dom, set_id)]
        reclen = sum(ln for _, ln in specs)
        while len(body) - p >= reclen:
            rec: dict[int, int | bytes] = {}
            for ie, ln in specs:
                rec[ie] = _value(body[p: p + ln])
                p += ln
            (m.options if scope else m.data).append((set_id, rec))
        assert len(body) - p < 4, "trailing bytes beyond padding"


def _decode_v5(msg: bytes) -> Message:
    (_, count, up, secs, nsecs, seq, etype, eid, sampling) = struct.unpack_from(
        ">HHIIIIBBH", msg)
    assert len(msg) == 24 + 48 * count
    m = Message(5, {"count": count, "uptime": up, "unix_secs": secs, "unix_nsecs": nsecs,
                    "seq": seq, "engine_type": etype, "engine_id": eid, "sampling": sampling})
    for i in range(count):
        r = struct.unpack_from(">IIIHHIIIIHHBBBBHHBBH", msg, 24 + 48 * i)
        m.data.append((0, dict(zip(
            ("srcaddr", "dstaddr", "nexthop", "input", "output", "dPkts", "dOctets", "First",
             "Last", "srcport", "dstport", "pad1", "tcp_flags", "prot", "tos", "src_as",
             "dst_as", "src_mask", "dst_mask", "pad2"), r, strict=True))))
    return m


def split_stream(data: bytes) -> list[bytes]:
    """IPFIX messages out of a TCP byte stream (length field at offset 2)."""
    out = []
    p = 0
    while p + 4 <= len(data):
        ln = struct.unpack_from(">H", data, p + 2)[0]
        if ln < 16 or p + ln > len(data):
            break
        out.append(data[p: p + ln])
        p += ln
    return out
