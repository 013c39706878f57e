"""Hand-made export messages (struct), so decoder tests state every byte they depend on."""

from __future__ import annotations

import struct


def ipfix_message(sets: list[bytes], seq: int = 0, domain: int = 1,
                  export_secs: int = 1_700_000_000) -> bytes:
    body = b"".join(sets)
    return struct.pack(">HHIII", 10, 16 + len(body), export_secs, seq, domain) + body


def ipfix_set(set_id: int, body: bytes) -> bytes:
    return struct.pack(">HH", set_id, 4 + len(body)) + body


def ipfix_template(tid: int, fields: list[tuple], scope: int | None = None) -> bytes:
    """fields: (ie id, length) or (ie id, length, pen). scope set -> options template record."""
    head = struct.pack(">HH", tid, len(fields))
    if scope is not None:
        head += struct.pack(">H", scope)
    specs = b""
    for f in fields:
        if len(f) == 3:
            specs += struct.pack(">HHI", f[0] | 0x8000, f[1], f[2])
        else:
            specs += struct.pack(">HH", f[0], f[1])
    return head + specs


def varlen(b: bytes) -> bytes:
    if len(b) < 255:
        return bytes([len(b)]) + b
    return b"\xff" + struct.pack(">H", len(b)) + b


def v9_packet(flowsets: list[bytes], seq: int = 0, source_id: int = 7, count: int | None = None,
              uptime_ms: int = 100_000, unix_secs: int = 1_700_000_000) -> bytes:
    n = len(flowsets) if count is None else count
    return struct.pack(">HHIIII", 9, n, uptime_ms, unix_secs, seq, source_id) + b"".join(flowsets)


def v9_template(tid: int, fields: list[tuple[int, int]]) -> bytes:
    return struct.pack(">HH", tid, len(fields)) + b"".join(struct.pack(">HH", *f) for f in fields)


def v9_options_template(tid: int, scopes: list[tuple[int, int]],
                        options: list[tuple[int, int]]) -> bytes:
    return (struct.pack(">HHH", tid, 4 * len(scopes), 4 * len(options))
            + b"".join(struct.pack(">HH", *f) for f in scopes + options))


V5_RECORD = struct.Struct(">IIIHHIIIIHHxBBBHHBBxx")


def v5_packet(records: list[dict], seq: int = 0, uptime_ms: int = 100_000,
              unix_secs: int = 1_700_000_000, unix_nsecs: int = 0, sampling: int = 0) -> bytes:
    head = struct.pack(">HHIIIIBBH", 5, len(records), uptime_ms, unix_secs, unix_nsecs, seq,
                       1, 2, sampling)
    body = b""
    for r in records:
        body += V5_RECORD.pack(r["src"], r["dst"], 0, 1, 2, r["packets"], r["bytes"],
                               r["first"], r["last"], r["sport"], r["dport"], r.get("flags", 0),
                               r["proto"], r.get("tos", 0), 0, 0, 24, 16)
    return head + body


def ipv4(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")
