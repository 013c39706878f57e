"""Splitting a TCP byte stream into export messages, with partial reads buffered.

- IPFIX (RFC 7011 §10.4): the header's length field frames each message.
- NetFlow v5: 24 + 48 x count bytes.
- NetFlow v9 has no length field (RFC 3954 is written for UDP). We frame it by walking its
  FlowSets and counting records (header ``count`` = template + options template + data records)
  until the count is reached; a data FlowSet whose template is not known counts as one record,
  and a FlowSet id of 9 (reserved, so it can only be the next header's version) also ends a
  message. A v9 exporter whose ``count`` is too high therefore delays a message until the next
  one starts; at end of stream the rest is delivered as the last message.

A stream that starts a message with another version, or buffers more than the limit without a
complete message, is broken: the caller counts the reason and closes the connection.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from probe.wire.messages import MIN_DATA_SET_ID

_U16x2 = struct.Struct(">HH")
_U16x3 = struct.Struct(">HHH")

RecordLength = Callable[[int, int], int | None]  # (source id, template id) -> record length


class StreamFramer:
    def __init__(self, record_length: RecordLength, max_buffer: int) -> None:
        self.buf = bytearray()
        self.record_length = record_length
        self.max_buffer = max_buffer

    def feed(self, data: bytes) -> tuple[list[bytes], str | None]:
        """Append received bytes; return complete messages and a reason if the stream is bad."""
        self.buf += data
        out: list[bytes] = []
        while self.buf:
            n = self._frame()
            if n is None:
                if len(self.buf) > self.max_buffer:
                    return out, "tcp_buffer_limit"
                return out, None
            if isinstance(n, str):
                return out, n
            out.append(bytes(self.buf[:n]))
            del self.buf[:n]
        return out, None

    def flush(self) -> bytes:
        """End of stream: whatever is left (a v9 message short of its count, or a fragment)."""
        rest, self.buf = bytes(self.buf), bytearray()
        return rest

    def _frame(self) -> int | str | None:
        buf = self.buf
        if len(buf) < 4:
            return None
        version, second = _U16x2.unpack_from(buf, 0)
        if version == 10:
            if second < 16:
                return "tcp_bad_length"
            return second if len(buf) >= second else None
        if version == 5:
            if not 1 <= second <= 30:
                return "bad_record_count"
            n = 24 + 48 * second
            return n if len(buf) >= n else None
        if version == 9:
            return self._v9_length(second)
        return "bad_version"

    def _v9_length(self, count: int) -> int | str | None:
        buf = self.buf
        if len(buf) < 20:
            return None
        source_id = int.from_bytes(buf[16:20], "big")
        local: dict[int, int] = {}  # templates defined inside this very message
        pos, records = 20, 0
        while records < count:
            if len(buf) - pos < 4:
                return None
            fs_id, fs_len = _U16x2.unpack_from(buf, pos)
            if fs_id == 9 and records > 0:
                return pos
            if fs_len < 4:
                return "set_too_short"
            if pos + fs_len > len(buf):
                return None
            records += self._count(bytes(buf[pos + 4:pos + fs_len]), fs_id, source_id, local)
            pos += fs_len
        return pos

    def _count(self, body: bytes, fs_id: int, source_id: int, local: dict[int, int]) -> int:
        n, pos = 0, 0
        if fs_id == 0:
            while len(body) - pos >= 4:
                tid, fields = _U16x2.unpack_from(body, pos)
                if tid == 0 or fields == 0:
                    break
                specs = body[pos + 4:pos + 4 + 4 * fields]
                local[tid] = sum(_U16x2.unpack_from(specs, i)[1]
                                 for i in range(0, len(specs) - 3, 4))
                pos += 4 + 4 * fields
                n += 1
            return n
        if fs_id == 1:
            while len(body) - pos >= 6:
                tid, scope_len, opt_len = _U16x3.unpack_from(body, pos)
                if tid == 0 or scope_len + opt_len == 0:
                    break
                specs = body[pos + 6:pos + 6 + scope_len + opt_len]
                local[tid] = sum(_U16x2.unpack_from(specs, i)[1]
                                 for i in range(0, len(specs) - 3, 4))
                pos += 6 + scope_len + opt_len
                n += 1
            return n
        if fs_id >= MIN_DATA_SET_ID:
            size = local.get(fs_id) or self.record_length(source_id, fs_id)
            if size:
                return max(1, len(body) // size)
        return 1
