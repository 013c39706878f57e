"""Message framing of IPFIX (RFC 7011), NetFlow v9 (RFC 3954) and NetFlow v5.

Framing is per message, never per record: a data set's body is a slice of a Chunk's encoded
bytes. Each protocol says how big its header is, how records and templates go into sets, and
how the header's clock and sequence fields are filled from a session's per-domain state.

Clocks (offline replay runs on the packet clock): NetFlow collectors compute a record's
absolute time as ``export_secs * 1000 - sysUptime + First``. The header's sysUptime is chosen
as ``export_secs * 1000 - sys_init_ms`` so that boot time is exactly ``sys_init_ms`` and
sysUpTime-relative times land on the packet's millisecond. The export time is the packet
clock rounded *up* to the second, so it is never before a record's end. NetFlow v5 differs: its
header has unix_nsecs, so it carries the exact millisecond and sysUptime is ``now_ms -
sys_init_ms``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from probe.export.templates import Template

IPFIX_TEMPLATE_SET = 2
IPFIX_OPTIONS_TEMPLATE_SET = 3
V9_TEMPLATE_FLOWSET = 0
V9_OPTIONS_TEMPLATE_FLOWSET = 1
V5_RECORD_LEN = 48
V5_MAX_RECORDS = 30


@dataclass(slots=True)
class DomainState:
    """Per (transport session, observation domain) state: sequence and template bookkeeping."""

    seq: int = 0  # IPFIX: data records sent; v9: packets sent; v5: flows sent
    templates_sent: set[int] = field(default_factory=set)
    # Template refresh over UDP, kept apart for data (False) and options (True) templates:
    # RFC 6728 has separate timers for each.
    last_refresh_us: dict[bool, int] = field(default_factory=dict)
    refresh_mark: dict[bool, int] = field(default_factory=dict)  # session messages at refresh
    last_options_us: int | None = None


def export_secs(now_us: int) -> int:
    return -(-now_us // 1_000_000)


class Protocol:
    version: int = 0
    header_len: int = 0
    uses_templates = True

    def records_per_message(self, record_len: int, max_size: int) -> int:
        return max(0, (max_size - self.header_len - 4 - 3) // record_len)

    def template_record(self, t: Template) -> bytes:
        raise NotImplementedError

    def template_set_id(self, t: Template) -> int:
        raise NotImplementedError

    def withdrawal_sets(self, templates: list[Template]) -> list[bytes]:
        return []  # NetFlow v9 has no template withdrawal

    def pad(self, body_len: int) -> int:
        return 0

    def set_bytes(self, set_id: int, body: bytes) -> bytes:
        pad = self.pad(4 + len(body))
        return struct.pack(">HH", set_id, 4 + len(body) + pad) + body + b"\0" * pad

    def header(self, st: DomainState, domain: int, length: int, count: int, n_data: int,
               now_us: int, sys_init_us: int) -> bytes:
        raise NotImplementedError


# RFC 3954's ICMP_TYPE (32) is type * 256 + code for either IP version; v9 collectors (nfdump)
# know no IPv6 variant, so IPFIX's icmpTypeCodeIPv6 (139) goes out as 32 in v9 templates.
V9_FIELD_TYPE = {139: 32}


def _specs(t: Template, v9: bool) -> bytes:
    out = bytearray()
    for s in t.specs:
        if s.enterprise:
            if v9:
                raise ValueError("NetFlow v9 cannot carry enterprise-specific IEs")
            out += struct.pack(">HHI", s.ie_id | 0x8000, s.length, s.enterprise)
        else:
            out += struct.pack(">HH", V9_FIELD_TYPE.get(s.ie_id, s.ie_id) if v9 else s.ie_id,
                               s.length)
    return bytes(out)


class Ipfix(Protocol):
    version = 10
    header_len = 16

    def template_record(self, t: Template) -> bytes:
        if t.is_options:
            head = struct.pack(">HHH", t.template_id, len(t.specs), t.scope_count)
        else:
            head = struct.pack(">HH", t.template_id, len(t.specs))
        return head + _specs(t, False)

    def template_set_id(self, t: Template) -> int:
        return IPFIX_OPTIONS_TEMPLATE_SET if t.is_options else IPFIX_TEMPLATE_SET

    def withdrawal_sets(self, templates: list[Template]) -> list[bytes]:
        """RFC 7011 §8.1 withdrawals (field count 0) of the data Templates.

        Options Templates are left to the implicit withdrawal of closing the TCP connection:
        Wireshark 4.0 misreads every form of options-template withdrawal (it expects a scope
        count) and would flag the export as malformed.
        """
        data = [t for t in templates if not t.is_options]
        if not data:
            return []
        return [self.set_bytes(IPFIX_TEMPLATE_SET, b"".join(
            struct.pack(">HH", t.template_id, 0) for t in data))]

    def header(self, st: DomainState, domain: int, length: int, count: int, n_data: int,
               now_us: int, sys_init_us: int) -> bytes:
        h = struct.pack(">HHIII", 10, length, export_secs(now_us) & 0xFFFFFFFF,
                        st.seq & 0xFFFFFFFF, domain & 0xFFFFFFFF)
        st.seq += n_data
        return h


class NetflowV9(Protocol):
    version = 9
    header_len = 20

    def template_record(self, t: Template) -> bytes:
        if t.is_options:
            scope, opts = t.specs[: t.scope_count], t.specs[t.scope_count:]
            return struct.pack(">HHH", t.template_id, 4 * len(scope), 4 * len(opts)) + \
                _specs(t, True)
        return struct.pack(">HH", t.template_id, len(t.specs)) + _specs(t, True)

    def template_set_id(self, t: Template) -> int:
        return V9_OPTIONS_TEMPLATE_FLOWSET if t.is_options else V9_TEMPLATE_FLOWSET

    def pad(self, set_len: int) -> int:
        return -set_len % 4  # RFC 3954 §5.3: flowsets padded to a 32-bit boundary

    def header(self, st: DomainState, domain: int, length: int, count: int, n_data: int,
               now_us: int, sys_init_us: int) -> bytes:
        secs = export_secs(now_us)
        uptime = secs * 1000 - sys_init_us // 1000
        h = struct.pack(">HHIIII", 9, count, uptime & 0xFFFFFFFF, secs & 0xFFFFFFFF,
                        st.seq & 0xFFFFFFFF, domain & 0xFFFFFFFF)
        st.seq += 1
        return h


class NetflowV5(Protocol):
    """NetFlow v5: fixed records, no sets, at most 30 records per packet."""

    version = 5
    header_len = 24
    uses_templates = False

    def __init__(self, sampling_interval: int = 0, random: bool = False) -> None:
        # Two mode bits (01 deterministic, 10 random) and a 14-bit interval.
        if sampling_interval > 1:
            self.sampling = ((2 if random else 1) << 14) | min(sampling_interval, 0x3FFF)
        else:
            self.sampling = 0

    def records_per_message(self, record_len: int, max_size: int) -> int:
        return min(V5_MAX_RECORDS, (max_size - self.header_len) // V5_RECORD_LEN)

    def header(self, st: DomainState, domain: int, length: int, count: int, n_data: int,
               now_us: int, sys_init_us: int) -> bytes:
        now_ms = now_us // 1000
        h = struct.pack(">HHIIIIBBH", 5, count, (now_ms - sys_init_us // 1000) & 0xFFFFFFFF,
                        (now_ms // 1000) & 0xFFFFFFFF, (now_ms % 1000) * 1_000_000,
                        st.seq & 0xFFFFFFFF, (domain >> 8) & 0xFF, domain & 0xFF,
                        self.sampling)
        st.seq += n_data
        return h
