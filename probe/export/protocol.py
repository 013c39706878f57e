"""Message framing of IPFIX (RFC 7011), NetFlow v9 (RFC 3954) and NetFlow v5.

Framing is per message, never per record: a data set's body is a slice of a Chunk's encoded
bytes. Each protocol says how big its header is, how records and templates go into sets, and
how the header's clock and sequence fields are filled from a session's per-domain state; the
layouts themselves (headers, sets, Template records) are the wire model's (``probe.wire``).

Clocks (offline replay runs on the packet clock): NetFlow collectors compute a record's
absolute time as ``export_secs * 1000 - sysUptime + First``. The header's sysUptime is chosen
as ``export_secs * 1000 - sys_init_ms`` so that boot time is exactly ``sys_init_ms`` and
sysUpTime-relative times land on the packet's millisecond. The export time is the packet
clock rounded *up* to the second, so it is never before a record's end. NetFlow v5 differs: its
header has unix_nsecs, so it carries the exact millisecond and sysUptime is ``now_ms -
sys_init_ms``.
"""

from __future__ import annotations

from probe.wire import DomainState, Template
from probe.wire.messages import (
    IPFIX_HEADER,
    IPFIX_OPTIONS_TEMPLATE_SET,
    IPFIX_TEMPLATE_SET,
    IPFIX_VERSION,
    V5_HEADER,
    V5_MAX_RECORDS,
    V5_RECORD_LEN,
    V5_VERSION,
    V9_HEADER,
    V9_OPTIONS_TEMPLATE_FLOWSET,
    V9_TEMPLATE_FLOWSET,
    V9_VERSION,
    set_bytes,
)
from probe.wire.templates import template_record, withdrawal_record


def _next(st: DomainState, n: int) -> int:
    """The domain's sequence number for this message; counts ``n`` more units after it."""
    seq = st.sequence or 0
    st.sequence = seq + n
    return seq & 0xFFFFFFFF


def export_secs(now_us: int) -> int:
    return -(-now_us // 1_000_000)


class Protocol:
    version: int = 0
    header_len: int = 0
    uses_templates = True
    align = 1  # sets are padded to a multiple of this many octets

    def records_per_message(self, record_len: int, max_size: int) -> int:
        return max(0, (max_size - self.header_len - 4 - 3) // record_len)

    def template_record(self, t: Template) -> bytes:
        return template_record(t, self.version)

    def template_set_id(self, t: Template) -> int:
        raise NotImplementedError

    def withdrawal_sets(self, templates: list[Template]) -> list[bytes]:
        return []  # NetFlow v9 has no template withdrawal

    def set_bytes(self, set_id: int, body: bytes) -> bytes:
        return set_bytes(set_id, body, self.align)

    def header(self, st: DomainState, domain: int, length: int, count: int, n_data: int,
               now_us: int, sys_init_us: int) -> bytes:
        raise NotImplementedError


class Ipfix(Protocol):
    version = IPFIX_VERSION
    header_len = IPFIX_HEADER.size

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
        return [self.set_bytes(IPFIX_TEMPLATE_SET, b"".join(withdrawal_record(t) for t in data))]

    def header(self, st: DomainState, domain: int, length: int, count: int, n_data: int,
               now_us: int, sys_init_us: int) -> bytes:
        return IPFIX_HEADER.pack(IPFIX_VERSION, length, export_secs(now_us) & 0xFFFFFFFF,
                                 _next(st, n_data), domain & 0xFFFFFFFF)


class NetflowV9(Protocol):
    version = V9_VERSION
    header_len = V9_HEADER.size
    align = 4  # RFC 3954 §5.3: flowsets padded to a 32-bit boundary

    def template_set_id(self, t: Template) -> int:
        return V9_OPTIONS_TEMPLATE_FLOWSET if t.is_options else V9_TEMPLATE_FLOWSET

    def header(self, st: DomainState, domain: int, length: int, count: int, n_data: int,
               now_us: int, sys_init_us: int) -> bytes:
        secs = export_secs(now_us)
        uptime = secs * 1000 - sys_init_us // 1000
        return V9_HEADER.pack(V9_VERSION, count, uptime & 0xFFFFFFFF, secs & 0xFFFFFFFF,
                              _next(st, 1), domain & 0xFFFFFFFF)


class NetflowV5(Protocol):
    """NetFlow v5: fixed records, no sets, at most 30 records per packet."""

    version = V5_VERSION
    header_len = V5_HEADER.size
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
        return V5_HEADER.pack(V5_VERSION, count, (now_ms - sys_init_us // 1000) & 0xFFFFFFFF,
                              (now_ms // 1000) & 0xFFFFFFFF, (now_ms % 1000) * 1_000_000,
                              _next(st, n_data), (domain >> 8) & 0xFF, domain & 0xFF,
                              self.sampling)
