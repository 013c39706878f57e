"""One export destination: its transport session, framing state, pending records and counters.

Records arrive as encoded Chunks and wait here, per (domain, template), until they fill a
message (or have waited ``FLUSH_DELAY_US`` on the packet clock, or the process closes). The
same store is the bounded queue of a TCP destination whose collector is away: nothing is framed
until a connection is up, so after a reconnect the new session sends its templates first and
then the queued records with fresh sequence numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from probe.config.model import Destination
from probe.errors import UserError
from probe.export.options import OptionsPlan
from probe.export.protocol import Protocol
from probe.export.templates import Chunk, Template, concat_chunks
from probe.export.transport import TcpTransport, UdpTransport
from probe.wire import DomainState

log = logging.getLogger(__name__)

FLUSH_DELAY_US = 1_000_000  # longest a partly filled message waits for more records
DEFAULT_QUEUE_LIMIT = 100_000  # records held while a TCP collector is away
CLOSE_TIMEOUT_S = 10.0  # how long close() keeps trying to reach a TCP collector
OPTIONS_DOMAIN = 0  # IPFIX observation domain of the options records (RFC 7011 §3.1)
FAILURE_HOLD_S = 5.0  # fallback/loadBalancing avoid a destination this long after a failed send


@dataclass(slots=True)
class Counters:
    messages: int = 0
    records: int = 0  # flow records sent (options records not included)
    bytes: int = 0
    failures: int = 0  # sends that failed
    dropped: int = 0  # flow records never sent (queue overflow, failed UDP sends, close)
    not_sent_packets: int = 0
    not_sent_octets: int = 0
    not_exportable: int = 0  # records this protocol cannot carry (IPv6 over NetFlow v5)


class DestinationRuntime:
    def __init__(self, dest: Destination, protocol: Protocol, options: OptionsPlan,
                 sys_init_us: int, options_period_us: int,
                 queue_limit: int = DEFAULT_QUEUE_LIMIT,
                 ignored_packets: Callable[[], int] = lambda: 0) -> None:
        self.dest = dest
        self.name = dest.name
        self.protocol = protocol
        self.options = options
        self.sys_init_us = sys_init_us
        self.options_period_us = options_period_us
        self.queue_limit = queue_limit
        self.ignored_packets = ignored_packets
        try:
            self.transport: UdpTransport | TcpTransport = (
                TcpTransport(dest) if dest.transport == "tcp" else UdpTransport(dest))
        except OSError as exc:  # unresolvable name, address of the wrong family, bad source
            raise UserError(f"export destination {dest.name}: {dest.destination_address} port "
                            f"{dest.destination_port}: {exc.strerror or exc}") from None
        self.max_size = self.transport.max_size
        self.counters = Counters()
        self._states: dict[int, DomainState] = {}
        self._session_messages = 0  # messages of the current transport session
        self._known: dict[int, dict[int, Template]] = {}  # domain -> id -> template to announce
        self._pending: dict[tuple[int, int], list[Chunk]] = {}
        self._pending_since: dict[tuple[int, int], int] = {}
        self._queued = 0
        self._failed_until = 0.0
        # (domain, now_us, session messages): _prepare found nothing due for this domain at
        # this time, and nothing can fall due before that many messages (see _prepared).
        self._ready: tuple[int, int, int] | None = None

    # ------------------------------------------------------------------ intake
    @property
    def up(self) -> bool:
        return self.transport.up

    @property
    def healthy(self) -> bool:
        """Up, and no send failed lately (a UDP collector answering port unreachable)."""
        last = max(self._failed_until, getattr(self.transport, "refused_at", float("-inf"))
                   + FAILURE_HOLD_S)
        return self.transport.up and time.monotonic() >= last

    @property
    def queued(self) -> int:
        return self._queued

    def records_per_message(self, chunk: Chunk) -> int:
        return self.protocol.records_per_message(chunk.record_len, self.max_size)

    def submit(self, chunk: Chunk, now_us: int) -> None:
        """Take records to send. A chunk larger than the queue goes in queue-sized slices, each
        sent (pumped) before the next: the limit bounds what waits for a collector that is
        away, not what a destination that is up can take in one go."""
        step = max(1, self.queue_limit)
        if chunk.n <= step:
            self._submit(chunk, now_us)
            return
        for lo in range(0, chunk.n, step):
            self._submit(chunk.slice(lo, min(lo + step, chunk.n)), now_us)

    def _submit(self, chunk: Chunk, now_us: int) -> None:
        room = self.queue_limit - self._queued
        if chunk.n > room:
            lost = chunk.slice(max(room, 0), chunk.n)
            self._count_dropped(lost)
            if room <= 0:
                return
            chunk = chunk.slice(0, room)
        if chunk.template is not None:
            known = self._known.setdefault(chunk.domain, {})
            if chunk.template.template_id not in known:
                self._ready = None  # a template to announce
            known[chunk.template.template_id] = chunk.template
        key = (chunk.domain, chunk.template.template_id if chunk.template else -1)
        if key not in self._pending:
            self._pending[key] = []
            self._pending_since[key] = now_us
        self._pending[key].append(chunk)
        self._queued += chunk.n
        self.pump(now_us)

    def take_pending(self) -> list[Chunk]:
        """Hand every waiting record over (fallback to another destination)."""
        out = [concat_chunks(cs) for cs in self._pending.values()]
        self._pending.clear()
        self._pending_since.clear()
        self._queued = 0
        return out

    def _count_dropped(self, chunk: Chunk) -> None:
        self.counters.dropped += chunk.n
        self.counters.not_sent_packets += chunk.packets
        self.counters.not_sent_octets += chunk.octets

    # ------------------------------------------------------------------ sending
    def poll(self) -> None:
        if self.transport.poll():
            self._states.clear()  # a new transport session: sequences and templates restart
            self._session_messages = 0
            self._ready = None

    def pump(self, now_us: int, force: bool = False) -> None:
        """Send every full message; partly filled ones too when ``force`` or waited long enough."""
        self.poll()
        if not self.transport.up:
            return
        for key in list(self._pending):
            chunks = self._pending[key]
            flush = force or now_us - self._pending_since[key] >= FLUSH_DELAY_US
            chunk = concat_chunks(chunks)
            k = self.records_per_message(chunk)
            if k <= 0:
                raise UserError(f"{self.name}: maxPacketSize {self.max_size} is too small for "
                                f"one {chunk.record_len}-octet record and its headers")
            pos = 0
            while chunk.n - pos >= k or (flush and pos < chunk.n):
                piece = chunk.slice(pos, min(pos + k, chunk.n))
                if not self._send_data(piece, now_us):
                    if self.transport.reliable:  # keep it for the next session
                        break
                    self._count_dropped(piece)
                pos += piece.n
                self._queued -= piece.n
            if pos == chunk.n:
                del self._pending[key]
                del self._pending_since[key]
            elif pos:
                self._pending[key] = [chunk.slice(pos, chunk.n)]
                self._pending_since[key] = now_us
            else:
                self._pending[key] = [chunk]  # concatenated once, not on every pump
            if not self.transport.up:
                return

    def tick(self, now_us: int) -> None:
        self.pump(now_us)
        if self.transport.up and self.protocol.uses_templates:
            for domain in list(self._known):
                self._prepare(domain, now_us)

    def _state(self, domain: int) -> DomainState:
        st = self._states.get(domain)
        if st is None:
            st = self._states[domain] = DomainState(sequence=0)
        return st

    def _emit(self, domain: int, body: bytes, count: int, n_data: int, now_us: int) -> bool:
        st = self._state(domain)
        hdr = self.protocol.header(st, domain, self.protocol.header_len + len(body), count,
                                   n_data, now_us, self.sys_init_us)
        msg = hdr + body
        if not self.transport.send(msg):
            self.counters.failures += 1
            self._failed_until = time.monotonic() + FAILURE_HOLD_S
            return False
        self.counters.messages += 1
        self.counters.bytes += len(msg)
        self._session_messages += 1
        return True

    def _send_data(self, chunk: Chunk, now_us: int) -> bool:
        if chunk.template is None:  # NetFlow v5
            ok = self._emit(chunk.domain, chunk.payload, chunk.n, chunk.n, now_us)
        else:
            if not self._prepared(chunk.domain, now_us):
                return False
            body = self.protocol.set_bytes(chunk.template.template_id, chunk.payload)
            ok = self._emit(chunk.domain, body, chunk.n, chunk.n, now_us)
        if ok:
            self.counters.records += chunk.n
        return ok

    # ------------------------------------------------------------------ templates and options
    def _refresh_due(self, st: DomainState, now_us: int, options: bool) -> bool:
        """UDP template refresh (RFC 7011 §8.4) by time or by messages sent, per kind."""
        if self.transport.reliable:
            return False  # TCP: templates once per connection (RFC 7011 §8.1)
        last = st.last_refresh_us.get(options)
        if last is None:
            return True
        d = self.dest
        timeout = d.options_template_refresh_timeout if options else d.template_refresh_timeout
        packets = d.options_template_refresh_packet if options else d.template_refresh_packet
        if timeout and now_us - last >= timeout * 1_000_000:
            return True
        # counted over the whole session, so options templates in domain 0 refresh too
        sent = self._session_messages - st.refresh_mark.get(options, 0)
        return bool(packets) and sent >= packets  # type: ignore[operator]

    def _options_due(self, st: DomainState, now_us: int) -> bool:
        if st.last_options_us is None:
            return True
        return bool(self.options_period_us) and \
            now_us - st.last_options_us >= self.options_period_us

    def _prepare(self, domain: int, now_us: int) -> bool:
        """Options records when due, then templates (new or due for refresh) of ``domain``.

        IPFIX options go out in observation domain 0, as RFC 7011 §3.1 suggests for exporting
        process statistics: the data domains' sequence numbers then count flow records only,
        which both tshark and nfdump (it leaves options records out of its check) agree with.
        Selector ids are numbered across the whole configuration, so they stay unambiguous
        there. NetFlow v9 keeps its sampling options in the data's source id, where v9
        collectors look for them (v9 sequences count packets, not records).
        """
        options_domain = OPTIONS_DOMAIN if self.protocol.version == 10 else domain
        if not self._send_options(options_domain, now_us):
            return False
        return self._announce_due(domain, now_us)

    def _prepared(self, domain: int, now_us: int) -> bool:
        """``_prepare``, skipped while nothing can have fallen due since it last found nothing.

        A pump sends many data messages at one packet-clock time, so between them neither a
        time-based refresh nor the options period can fall due; only a refresh counted in
        messages can, and it is known in advance when. Checking once per message was a sixth
        of a replay's export time.
        """
        ready = self._ready
        if (ready is not None and ready[0] == domain and ready[1] == now_us
                and self._session_messages < ready[2]):
            return True
        self._ready = None
        if not self._prepare(domain, now_us):
            return False
        self._ready = (domain, now_us, self._next_counted_refresh(domain))
        return True

    def _next_counted_refresh(self, domain: int) -> int:
        """The session message count at which a templateRefreshPacket (or the options one)
        falls due for ``domain`` or for the options domain."""
        if self.transport.reliable:
            return 1 << 62
        d = self.dest
        every = {False: d.template_refresh_packet, True: d.options_template_refresh_packet}
        options_domain = OPTIONS_DOMAIN if self.protocol.version == 10 else domain
        due = [st.refresh_mark.get(kind, 0) + n
               for st in {id(s): s for s in (self._state(domain), self._state(options_domain))
                          }.values()
               for kind, n in every.items() if n]
        return min(due, default=1 << 62)

    def _send_options(self, domain: int, now_us: int) -> bool:
        st = self._state(domain)
        if not self._options_due(st, now_us):
            return domain not in self._known or self._announce_due(domain, now_us)
        options = self.options.records(
            domain, {**self.stats(), "ignored_packets": self.ignored_packets()},
            self.sys_init_us)
        known = self._known.setdefault(domain, {})
        for t, _, _ in options:
            known[t.template_id] = t
        if not self._announce_due(domain, now_us):
            return False
        if options and not self._emit_sets(
                domain, [(self.protocol.set_bytes(t.template_id, payload), n, n)
                         for t, payload, n in options], now_us):
            return False
        st.last_options_us = now_us
        return True

    def _announce_due(self, domain: int, now_us: int) -> bool:
        """Templates of ``domain`` the session has not sent yet or must refresh."""
        st = self._state(domain)
        known = self._known.setdefault(domain, {})
        due = {kind: self._refresh_due(st, now_us, kind) for kind in (False, True)}
        missing = [t for tid, t in known.items()
                   if due[t.is_options] or tid not in st.templates_sent]
        if missing:
            if not self._announce(domain, missing, now_us):
                return False
            st.templates_sent.update(t.template_id for t in missing)
            for kind in (False, True):
                if due[kind] and any(t.is_options == kind for t in missing):
                    st.last_refresh_us[kind] = now_us
                    st.refresh_mark[kind] = self._session_messages
        return True

    def _emit_sets(self, domain: int, sets: list[tuple[bytes, int, int]], now_us: int) -> bool:
        """Sets (bytes, records for the count field, data records) in as few messages as fit."""
        room = self.max_size - self.protocol.header_len
        body, count, n_data = b"", 0, 0
        for set_bytes, c, n in sets:
            if body and len(body) + len(set_bytes) > room:
                if not self._emit(domain, body, count, n_data, now_us):
                    return False
                body, count, n_data = b"", 0, 0
            body += set_bytes
            count += c
            n_data += n
        return not body or self._emit(domain, body, count, n_data, now_us)

    def _withdraw(self, domain: int, templates: list[Template], now_us: int) -> None:
        """Withdrawal sets (TCP, clean close)."""
        self._emit_sets(domain, [(s, 1, 0) for s in self.protocol.withdrawal_sets(templates)],
                        now_us)

    def _announce(self, domain: int, templates: list[Template], now_us: int) -> bool:
        """Template Sets for ``templates``, packed into as few messages as fit."""
        recs = [(self.protocol.template_set_id(t), self.protocol.template_record(t))
                for t in templates]
        recs.sort(key=lambda x: x[0])
        room = self.max_size - self.protocol.header_len
        msgs: list[list[tuple[int, bytes]]] = [[]]
        size = 0
        for set_id, r in recs:
            cur = msgs[-1]
            extra = len(r) + (8 if not cur or cur[-1][0] != set_id else 0)  # set header + pad
            if cur and size + extra > room:
                msgs.append([])
                cur = msgs[-1]
                size = 0
                extra = len(r) + 8
            cur.append((set_id, r))
            size += extra
        for m in msgs:
            if not m:
                continue
            body = b"".join(self.protocol.set_bytes(sid, b"".join(r for s, r in m if s == sid))
                            for sid in sorted({s for s, _ in m}))
            if not self._emit(domain, body, len(m), 0, now_us):
                return False
        return True

    # ------------------------------------------------------------------ end
    def close(self, now_us: int) -> None:
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while True:
            self.pump(now_us, force=True)
            if not self._pending or not self.transport.reliable or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for chunks in self._pending.values():
            for c in chunks:
                self._count_dropped(c)
        self._pending.clear()
        self._queued = 0
        if self.counters.dropped:
            why = self.transport.last_error or "queue full"
            log.warning("export destination %s: %d flow records not sent (%s)", self.name,
                        self.counters.dropped, why)
        self._ready = None
        if self.transport.up and self.protocol.uses_templates:
            for st in self._states.values():
                st.last_options_us = None  # the final statistics go out once more
            for domain in list(self._states):
                self._prepare(domain, now_us)
            if self.transport.reliable:
                for domain, st in list(self._states.items()):
                    sent = [t for tid, t in self._known.get(domain, {}).items()
                            if tid in st.templates_sent]
                    if sent:
                        self._withdraw(domain, sent, now_us)
        self.transport.close()

    def stats(self) -> dict[str, int]:
        c = self.counters
        return {"messages": c.messages, "records": c.records, "bytes": c.bytes,
                "failures": c.failures, "queued": self._queued, "dropped": c.dropped,
                "not_sent_records": c.dropped, "not_sent_packets": c.not_sent_packets,
                "not_sent_octets": c.not_sent_octets, "not_exportable": c.not_exportable,
                "connected": int(self.transport.up),
                "refused": getattr(self.transport, "refusals", 0)}
