"""One export destination: its transport session, framing state, pending records and counters.

Records arrive as encoded Chunks and wait here, per (domain, template), until they fill a
message (or have waited ``FLUSH_DELAY_US`` on the packet clock, or the process closes). The
same store is the bounded queue of a TCP destination whose collector is away: nothing is framed
until a connection is up, so after a reconnect the new session sends its templates first and
then the queued records with fresh sequence numbers.

Over TCP a record is not done when its message is written: a collector killed a moment later
loses what its kernel had not acknowledged, and what it had acknowledged but not yet read and
stored. So each message's records stay here until the transport says that part of the stream
is settled; when the connection is lost, the records not settled are sent again first on the
next connection (templates first, fresh sequence numbers). The collector may then see some
twice: they are counted as sent again (``resent``). Those that never find a connection again
before the process closes are counted as ``unconfirmed``; records never sent at all as
``dropped``. An offline run waits for a TCP collector that is away instead of dropping
records when the queue is full: its packets are in a file, nothing is lost by waiting.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from probe.config.model import Destination
from probe.errors import UserError
from probe.export.filewriter import FileTransport
from probe.export.options import OptionsPlan
from probe.export.protocol import Protocol
from probe.export.templates import Chunk, Template, concat_chunks
from probe.export.transport import TcpTransport, UdpTransport
from probe.wire import DomainState

log = logging.getLogger(__name__)

FLUSH_DELAY_US = 1_000_000  # longest a partly filled message waits for more records
DEFAULT_QUEUE_LIMIT = 100_000  # records held while a TCP collector is away
CLOSE_TIMEOUT_S = 10.0  # how long close() keeps trying to reach a TCP collector
QUEUE_WAIT_S = 10.0  # offline: how long a full queue waits for a TCP collector to come back
OPTIONS_DOMAIN = 0  # IPFIX observation domain of the options records (RFC 7011 §3.1)
FAILURE_HOLD_S = 5.0  # fallback/loadBalancing avoid a destination this long after a failed send


@dataclass(slots=True)
class Counters:
    messages: int = 0
    records: int = 0  # flow records sent (options records not included)
    bytes: int = 0
    failures: int = 0  # sends that failed
    dropped: int = 0  # flow records never sent (queue overflow, failed UDP sends, close)
    resent: int = 0  # flow records sent again on a new TCP connection (maybe seen twice)
    unconfirmed: int = 0  # sent on a TCP connection that was lost, never sent again
    not_sent_packets: int = 0
    not_sent_octets: int = 0
    not_exportable: int = 0  # records this protocol cannot carry (IPv6 over NetFlow v5)
    templates: int = 0  # Template records sent (RFC 6728 transportSession templates)
    options_templates: int = 0  # Options Template records sent


class DestinationRuntime:
    def __init__(self, dest: Destination, protocol: Protocol, options: OptionsPlan,
                 sys_init_us: int, options_period_us: int,
                 queue_limit: int = DEFAULT_QUEUE_LIMIT,
                 ignored_packets: Callable[[], int] = lambda: 0,
                 wait_when_full: bool = False) -> None:
        self.dest = dest
        self.name = dest.name
        self.protocol = protocol
        self.options = options
        self.sys_init_us = sys_init_us
        self.options_period_us = options_period_us
        self.queue_limit = queue_limit
        self.ignored_packets = ignored_packets
        try:
            self.transport: UdpTransport | TcpTransport | FileTransport = _transport(dest)
        except OSError as exc:  # unresolvable name, address of the wrong family, bad source
            raise UserError(f"export destination {dest.name}: {dest.destination_address} port "
                            f"{dest.destination_port}: {exc.strerror or exc}") from None
        self.counters = Counters()
        # when the current transport session began (wall clock): UDP and a file at once, TCP
        # at each connection
        self.session_started = time.time() if not self.transport.reliable or \
            _is_file(self.transport) else None
        self._states: dict[int, DomainState] = {}
        self._session_messages = 0  # messages of the current transport session
        self._known: dict[int, dict[int, Template]] = {}  # domain -> id -> template to announce
        self._pending: dict[tuple[int, int], list[Chunk]] = {}
        self._pending_since: dict[tuple[int, int], int] = {}
        self._queued = 0
        self.wait_when_full = wait_when_full
        self.end_confirmed = False  # TCP: the collector read the stream to its end and closed
        # TCP: (stream offset after its message, records) written on the current connection
        # and not settled yet; and records of a lost connection, to send first on the next.
        self._sent: deque[tuple[int, Chunk]] = deque()
        self._resend: deque[Chunk] = deque()
        self._resend_n = 0
        self._failed_until = 0.0
        # (domain, now_us, session messages): _prepare found nothing due for this domain at
        # this time, and nothing can fall due before that many messages (see _prepared).
        self._ready: tuple[int, int, int] | None = None

    def announce(self, templates: list[Template], now_us: int) -> None:
        """Make ``templates`` known and send them now, with the options records, before any
        data (a file: every layout it will hold, at its head)."""
        for t in templates:
            self._known.setdefault(t.domain, {})[t.template_id] = t
        self._ready = None
        self.poll()
        if self.transport.up:
            for domain in list(self._known):
                self._prepare(domain, now_us)

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
        return self._queued + self._resend_n

    @property
    def max_size(self) -> int:
        """The largest message: the transport's, which path MTU discovery may lower."""
        return self.transport.max_size

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
        if self.wait_when_full and self.transport.reliable:
            self._wait_for_room(chunk.n, now_us)
        # With a connection up the pump below sends the slice now, whatever partly filled
        # messages already wait.
        room = max(self.queue_limit, self._queued + chunk.n) if self.transport.up \
            else self.queue_limit - self._queued
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

    def _wait_for_room(self, n: int, now_us: int) -> None:
        """Offline, a TCP collector that is away is waited for (QUEUE_WAIT_S at most) rather
        than records dropped: sending what fits frees the room."""
        deadline = time.monotonic() + QUEUE_WAIT_S
        while self._queued + n > self.queue_limit and time.monotonic() < deadline:
            self.pump(now_us)  # reconnects when the backoff allows, then sends
            if self.transport.up:
                return
            time.sleep(0.02)

    def take_pending(self) -> list[Chunk]:
        """Hand every waiting record over (fallback to another destination)."""
        out = [*self._resend, *(concat_chunks(cs) for cs in self._pending.values())]
        self._resend.clear()
        self._resend_n = 0
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
        new = self.transport.poll()
        if new:
            self.session_started = time.time()
        if self._sent and (new or not self.transport.up):
            self._requeue_sent()
        if new:
            self._states.clear()  # a new transport session: sequences and templates restart
            self._session_messages = 0
            self._ready = None

    def _requeue_sent(self) -> None:
        """The connection that carried these records is gone before they were settled."""
        chunks = [c for _, c in self._sent]
        self._sent.clear()
        self._resend.extendleft(reversed(chunks))  # before what a later loss left there
        self._resend_n += sum(c.n for c in chunks)

    def _settle(self) -> None:
        """Forget the records the collector can no longer lose (see TcpTransport.settled)."""
        settled = self.transport.settled() if self._sent else None  # type: ignore[union-attr]
        if settled is None:
            return
        sent = self._sent
        while sent and sent[0][0] <= settled:
            sent.popleft()

    def _send_again(self, now_us: int) -> None:
        """Records of a lost connection go first on the new one (templates before them)."""
        while self._resend and self.transport.up:
            chunk = self._resend[0]
            if not self._send_data(chunk, now_us, again=True):
                return
            self._resend.popleft()
            self._resend_n -= chunk.n

    def pump(self, now_us: int, force: bool = False) -> None:
        """Send every full message; partly filled ones too when ``force`` or waited long enough."""
        self.poll()
        if not self.transport.up:
            return
        if self._resend:
            self._send_again(now_us)
        for key in list(self._pending):
            chunks = self._pending[key]
            flush = force or now_us - self._pending_since[key] >= FLUSH_DELAY_US
            chunk = concat_chunks(chunks)
            k = self.records_per_message(chunk)
            if k <= 0:
                setting = (f"maxMessageSize {self.max_size}" if self.dest.transport == "file"
                           else f"maxPacketSize {self.dest.max_packet_size}"
                           if self.dest.max_packet_size else f"a message of {self.max_size}")
                raise UserError(f"{self.name}: {setting} is too small for one "
                                f"{chunk.record_len}-octet record and its headers")
            pos = 0
            while chunk.n - pos >= k or (flush and pos < chunk.n):
                piece = chunk.slice(pos, min(pos + k, chunk.n))
                if not self._send_data(piece, now_us):
                    if self.transport.reliable:  # keep it for the next session
                        break
                    if self._shrunk():  # the path MTU shrank: the same, in smaller messages
                        k = max(1, self.records_per_message(chunk))
                        continue
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
                break
        if self.transport.reliable:
            if self.transport.up:
                self._settle()
            elif self._sent:
                self._requeue_sent()

    def tick(self, now_us: int) -> None:
        self.pump(now_us)
        if self.transport.up and self.protocol.uses_templates:
            for domain in list(self._known):
                self._prepare(domain, now_us)

    def send_templates(self, now_us: int) -> str:
        """Every Template and Options Template of the session again, now rather than at the
        next refresh (``softflowctl send-template``), for a collector that lost them; what
        happened, in words. UDP only: over TCP a session sends its Templates once."""
        if not self.protocol.uses_templates:
            return "NetFlow v5 has no templates"
        if self.transport.reliable:
            return "not resent: over TCP a session's templates go once, when it connects"
        self.poll()
        if not self.transport.up:
            return "not sent: the destination is down"
        for st in self._states.values():
            st.last_refresh_us.clear()  # every refresh falls due now
        self._ready = None
        sent = sum(len(known) for known in self._known.values())
        for domain in list(self._known):
            if not self._prepare(domain, now_us):
                return f"not sent: {self.transport.last_error or 'the send failed'}"
        return f"{sent} templates sent" if sent else "no templates yet (no record sent)"

    def _state(self, domain: int) -> DomainState:
        st = self._states.get(domain)
        if st is None:
            st = self._states[domain] = DomainState(sequence=0)
        return st

    def _shrunk(self) -> bool:
        """Whether the last send failed for a path MTU that shrank (and say it once)."""
        shrunk = getattr(self.transport, "shrunk", False)
        if shrunk:
            self.transport.shrunk = False  # type: ignore[union-attr]
        return shrunk

    def _emit(self, domain: int, body: bytes, count: int, n_data: int, now_us: int) -> bool:
        st = self._state(domain)
        sequence = st.sequence
        hdr = self.protocol.header(st, domain, self.protocol.header_len + len(body), count,
                                   n_data, now_us, self.sys_init_us)
        msg = hdr + body
        if not self.transport.send(msg):
            if getattr(self.transport, "shrunk", False):
                st.sequence = sequence  # never sent: its records go again, in smaller messages
            self.counters.failures += 1
            self._failed_until = time.monotonic() + FAILURE_HOLD_S
            return False
        self.counters.messages += 1
        self.counters.bytes += len(msg)
        self._session_messages += 1
        return True

    def _send_data(self, chunk: Chunk, now_us: int, again: bool = False) -> bool:
        if chunk.template is None:  # NetFlow v5
            ok = self._emit(chunk.domain, chunk.payload, chunk.n, chunk.n, now_us)
        else:
            if not self._prepared(chunk.domain, now_us):
                return False
            body = self.protocol.set_bytes(chunk.template.template_id, chunk.payload)
            ok = self._emit(chunk.domain, body, chunk.n, chunk.n, now_us)
        if ok:
            if again:
                self.counters.resent += chunk.n
            else:
                self.counters.records += chunk.n
            if self.transport.reliable:
                self._sent.append((self.transport.written, chunk))  # type: ignore[union-attr]
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
        options = sum(t.is_options for t in templates)
        self.counters.options_templates += options
        self.counters.templates += len(templates) - options
        return True

    # ------------------------------------------------------------------ end
    def close(self, now_us: int) -> None:
        """Send everything, then the final statistics (and, over TCP, the withdrawals).

        Over TCP the end of stream is confirmed: the collector closes its side once it has
        read every byte before it. A collector that crashes meanwhile resets the connection
        instead, and what it may have lost is sent again on a new one, within CLOSE_TIMEOUT_S.
        """
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        reliable = self.transport.reliable
        finished = False
        while True:
            self.pump(now_us, force=True)
            if not (self._pending or self._resend) and self.transport.up:
                self._final_messages(now_us)
                if not reliable:
                    break
                finished = self.transport.finish(deadline)  # type: ignore[union-attr]
                if finished or self.transport.up:  # read to the end, or still reading
                    break
            if not reliable or _is_file(self.transport) or time.monotonic() > deadline:
                break  # a file that failed a write stays failed: no reconnect to wait for
            time.sleep(0.05)
        self.end_confirmed = finished
        if finished:
            self._sent.clear()
        else:
            self._settle()
            self._requeue_sent()
        for chunks in self._pending.values():
            for c in chunks:
                self._count_dropped(c)
        self._pending.clear()
        self._queued = 0
        self.counters.unconfirmed += self._resend_n
        self._resend.clear()
        self._resend_n = 0
        why = self.transport.last_error or "queue full"
        if self.counters.dropped:
            log.warning("export destination %s: %d flow records not sent (%s)", self.name,
                        self.counters.dropped, why)
        if self.counters.unconfirmed:
            log.warning("export destination %s: %d flow records sent but not confirmed: the "
                        "connection was lost, or the collector had not read them %d s after "
                        "the end (%s)", self.name, self.counters.unconfirmed, CLOSE_TIMEOUT_S,
                        why)
        self.transport.close()

    def _final_messages(self, now_us: int) -> None:
        """The exporting process statistics once more; over TCP, template withdrawals (a
        file ends without: it closes no session a reader holds on to)."""
        self._ready = None
        if not self.protocol.uses_templates:
            return
        for st in self._states.values():
            st.last_options_us = None
        for domain in list(self._states):
            self._prepare(domain, now_us)
        if self.transport.reliable and not _is_file(self.transport):
            for domain, st in list(self._states.items()):
                sent = [t for tid, t in self._known.get(domain, {}).items()
                        if tid in st.templates_sent]
                if sent:
                    self._withdraw(domain, sent, now_us)

    def stats(self) -> dict[str, Any]:
        """Counters (numbers), and the transport session (``session``: texts)."""
        c = self.counters
        return {"messages": c.messages, "records": c.records, "bytes": c.bytes,
                "failures": c.failures, "queued": self.queued, "dropped": c.dropped,
                "not_sent_records": c.dropped, "not_sent_packets": c.not_sent_packets,
                "not_sent_octets": c.not_sent_octets, "not_exportable": c.not_exportable,
                "connected": int(self.transport.up),
                "refused": getattr(self.transport, "refusals", 0),
                "resent": c.resent, "unconfirmed": c.unconfirmed,
                "end_confirmed": int(self.end_confirmed),
                "connects": getattr(self.transport, "connects", 0),
                "templates": c.templates, "options_templates": c.options_templates,
                "session": self.session()}

    def session(self) -> dict[str, str]:
        """The transport session as RFC 6728 describes it (addresses as text, so that the
        statistics of several workers merge: their numbers add, their texts do not)."""
        out = {"started": "" if self.session_started is None else
               time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.session_started))}
        sock = getattr(self.transport, "sock", None)
        if sock is not None and self.transport.up:
            try:
                local, peer = sock.getsockname()[:2], sock.getpeername()[:2]
            except OSError:
                return out
            out.update(source_address=str(local[0]), source_port=str(local[1]),
                       destination_address=str(peer[0]), destination_port=str(peer[1]))
        return out


def _transport(dest: Destination) -> UdpTransport | TcpTransport | FileTransport:
    if dest.transport == "file":
        return FileTransport(dest)
    if dest.transport == "tcp" and dest.tls is not None:
        # ssl costs 5 ms of start-up: only a TLS destination pays it
        from probe.export.tlstransport import TlsTransport
        return TlsTransport(dest)
    if dest.transport == "tcp":
        return TcpTransport(dest)
    return UdpTransport(dest)


def _is_file(transport: object) -> bool:
    """A fileWriter: its session ends with the file, no template withdrawal, no reconnect."""
    return getattr(transport, "is_file", False)
