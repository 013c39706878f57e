"""NATS JetStream transport (GoFlow2+'s choice over Kafka): one message per flow, acknowledged.

Each flow is published to a subject made from a pattern (``flows.{sampler_address}``: any
flow field in braces, so consumers can take one exporter's flows, or ``{key}``, the mapping's
key fields joined by ``-``) into a stream that is created when missing (file storage, the
pattern's subjects with each field a ``*``). Field values have ``.``, ``*``, ``>`` and
whitespace replaced by ``_``, so a value is always one subject token.

Delivery: every message carries a ``Nats-Msg-Id`` unique to this collector run, and is
published with ``publish_async`` in batches of 1024 whose acknowledgements are awaited
together (four batches in flight), and resent until JetStream acknowledges it or
``retry_for`` seconds have passed since it was first sent, whatever happens in between
(the server restarting, the connection being re-established: the client reconnects on its
own; nothing is handed to the client while it is disconnected, so a message given up on is
not sent later from its buffer). A message sent twice because an acknowledgement was lost is
stored once (JetStream's duplicate window, set to twice ``retry_for``). What is never
acknowledged is counted as lost (one sent just before the server vanished may have been
stored without an answer: the count is an upper bound); so is what arrives while
``max_pending`` messages already wait (the queue is bounded: a server that stays away must
not take the collector's memory). ``summary()`` says how many were published, acknowledged,
retried and lost, and why.

nats-py is asyncio: the client runs on an event loop in a thread of its own; the collector's
thread hands batches over and never waits for the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from probe.collect.columns import TOK, Column
from probe.collect.flows import FlowBatch, column_values
from probe.errors import UserError

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.#-]+)\}")
_NOT_IN_TOKEN = str.maketrans({c: "_" for c in ". *>\t\r\n"})
_IN_FLIGHT = 1024  # messages in one batch, published and then awaited together
_BATCHES = 4  # batches awaiting acknowledgements at once


class TransportError(Exception):
    """The transport cannot start (no server answers): exit 1, one line."""


@dataclass(frozen=True, slots=True)
class Subject:
    """A subject pattern: literal text with ``{field}`` placeholders."""

    pattern: str
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, pattern: str) -> Subject:
        tokens = pattern.split(".")
        bad = [t for t in tokens if not t or any(c in _PLACEHOLDER.sub("", t) for c in " *>\t")]
        if bad:
            raise UserError(f"--nats-subject {pattern}: not a subject (empty token or a "
                            "wildcard or space outside {field})")
        return cls(pattern, tuple(_PLACEHOLDER.findall(pattern)))

    @property
    def wildcard(self) -> str:
        """The subjects the stream takes: every token with a placeholder is ``*``."""
        return ".".join("*" if _PLACEHOLDER.search(t) else t for t in self.pattern.split("."))

    def render(self, flow: Mapping[str, object], key: str) -> str:
        """The subject of one flow (a dict of its fields as the JSON line has them)."""
        if not self.fields:
            return self.pattern

        def value(m: re.Match[str]) -> str:
            name = m.group(1)
            return _token(key if name == "key" else flow.get(name))

        return _PLACEHOLDER.sub(value, self.pattern)

    def render_batch(self, b: FlowBatch, key_fields: Sequence[str] = ()) -> list[bytes]:
        """The subject of every row of a batch: each field's column becomes its tokens once,
        per distinct value, and the pattern is filled in per row."""
        if not self.fields:
            return [self.pattern.encode()] * b.n
        tokens: dict[str, list[str]] = {}
        for name in {*self.fields, *key_fields} - {"key"}:
            c = b.columns.get(name)
            tokens[name] = _tokens(c) if c is not None else ["_"] * b.n
        if "key" in self.fields:
            tokens["key"] = ["-".join(parts) for parts in
                             zip(*(tokens[k] for k in key_fields), strict=True)] \
                if key_fields else ["_"] * b.n
        parts = [(text, name) for text, name in _split(self.pattern)]
        out = []
        for i in range(b.n):
            out.append("".join(text if name is None else tokens[name][i]
                               for text, name in parts).encode())
        return out


def _token(v: object) -> str:
    return "_" if v is None or v == "" else str(v).translate(_NOT_IN_TOKEN)


def _tokens(c: Column) -> list[str]:
    if c.kind == TOK:
        done = [_token(x) for x in (c.conv(v) for v in c.values or ())]
        return [done[i] for i in c.data.tolist()]
    return [_token(v) for v in column_values(c, True)]


def _split(pattern: str) -> list[tuple[str, str | None]]:
    """The pattern as literal text and placeholders, in order."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(pattern):
        out.append((pattern[pos:m.start()], None))
        out.append(("", m.group(1)))
        pos = m.end()
    out.append((pattern[pos:], None))
    return [p for p in out if p[0] or p[1] is not None]


_FRAME = struct.Struct(">HI")


def frames(subjects: Sequence[bytes], payloads: Sequence[bytes]) -> bytes:
    """Messages as one byte string (a worker's output to the parent): for each, the subject's
    and the payload's length, then both."""
    return b"".join(_FRAME.pack(len(s), len(p)) + s + p
                    for s, p in zip(subjects, payloads, strict=True))


def unframe(data: bytes) -> tuple[list[str], list[bytes]]:
    subjects, payloads = [], []
    pos, end = 0, len(data)
    while pos < end:
        ns, npl = _FRAME.unpack_from(data, pos)
        pos += _FRAME.size
        subjects.append(data[pos:pos + ns].decode())
        payloads.append(data[pos + ns:pos + ns + npl])
        pos += ns + npl
    return subjects, payloads


@dataclass(slots=True)
class NatsStats:
    published: int = 0  # messages handed to the client (first attempts)
    acknowledged: int = 0
    retries: int = 0
    lost_unacknowledged: int = 0  # no acknowledgement within retry_for
    lost_queue_full: int = 0  # arrived while max_pending messages were waiting
    last_error: str = ""

    @property
    def lost(self) -> int:
        return self.lost_unacknowledged + self.lost_queue_full


class NatsTransport:
    """Publishes messages to a JetStream stream from a thread of its own."""

    def __init__(self, servers: Sequence[str], stream: str, subject: str, *,
                 retry_for: float = 30.0,
                 ack_timeout: float = 2.0, max_pending: int = 200_000) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", stream):
            raise UserError(f"--nats-stream {stream}: a stream name is letters, digits, _ "
                            "and -")
        self.servers = list(servers)
        self.stream = stream
        self.subject = Subject.parse(subject)
        self.retry_for = retry_for
        self.ack_timeout = ack_timeout
        self.max_pending = max_pending
        self.stats = NatsStats()
        self._run_id = os.urandom(6).hex()
        self._serial = 0
        self._queue: deque[tuple[str, bytes, str]] = deque()
        self._lock = threading.Lock()
        self._pending = 0  # queued or in flight
        self._loop = asyncio.new_event_loop()
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.connect_timeout = 5.0

    # ------------------------------------------------------------------ collector side
    def start(self, timeout: float = 5.0, now: bool = True) -> None:
        """Connect and make sure the stream exists; TransportError if no server answers.

        ``now=False`` checks so and disconnects; the client's thread starts with the first
        message. ``?count=N`` forks its workers after this: no thread of ours must be
        running then.
        """
        self.connect_timeout = timeout
        if not now:
            try:
                asyncio.run(self._check())
            except Exception as exc:
                raise TransportError(f"nats: {', '.join(self.servers)}: {exc}") from None
            return
        self._start_thread()
        if not self._ready.wait(timeout + 10):
            self._start_error = TimeoutError(f"no answer within {timeout + 10:g} s")
        if self._start_error is not None:
            raise TransportError(f"nats: {', '.join(self.servers)}: {self._start_error}")

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="flowprobe-nats", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        """Queue the messages of ``frames`` output (``FlowOutput`` encodes them)."""
        self.publish(*unframe(data))

    def publish(self, subjects: Sequence[str], payloads: Sequence[bytes]) -> None:
        """Queue one message per subject and payload; never blocks."""
        items = []
        for subject, payload in zip(subjects, payloads, strict=True):
            self._serial += 1
            items.append((subject, payload, f"{self._run_id}-{self._serial}"))
        with self._lock:
            room = max(0, self.max_pending - self._pending)
            if len(items) > room:
                self.stats.lost_queue_full += len(items) - room
                items = items[:room]
            self._pending += len(items)
        if items:
            if self._thread is None:
                self._start_thread()
            self._loop.call_soon_threadsafe(self._take, items)

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (each message at most ``retry_for`` more), then disconnect."""
        if self._thread is None:
            return
        self._closing = True
        with contextlib.suppress(RuntimeError):  # the loop may have ended already
            self._loop.call_soon_threadsafe(self._kick)
        self._thread.join(self.retry_for + self.ack_timeout + 10 if timeout is None
                          else timeout)

    def summary(self) -> str:
        s = self.stats
        line = (f"nats: {s.published} published to stream {self.stream}, {s.acknowledged} "
                f"acknowledged, {s.retries} retries, {s.lost} lost")
        if s.lost:
            line += (f" ({s.lost_unacknowledged} not acknowledged within "
                     f"{self.retry_for:g} s, {s.lost_queue_full} with the queue full; "
                     f"last error: {s.last_error or 'none'})")
            if s.lost_unacknowledged:
                line += ("; a message sent just before the server went away may be stored "
                         "although never acknowledged")
        return line

    # ------------------------------------------------------------------ event loop side
    def _take(self, items: list[tuple[str, bytes, str]]) -> None:
        self._queue.extend(items)
        self._kick()

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _connect(self) -> tuple[object, object]:
        """Connect and make sure the stream exists: (client, JetStream context)."""
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        async def quiet(*_: object) -> None:  # reconnects are normal; losses are counted
            return None

        # The client retries its first connection as often as later ones (for ever): the
        # start is bounded here.
        connecting = nats.connect(self.servers, connect_timeout=2, allow_reconnect=True,
                                  max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                                  error_cb=quiet, disconnected_cb=quiet,
                                  reconnected_cb=quiet, pending_size=64 * 1024 * 1024)
        try:
            nc = await asyncio.wait_for(connecting, self.connect_timeout)
        except TimeoutError:
            raise TimeoutError(f"no server answered within {self.connect_timeout:g} s") \
                from None
        js = nc.jetstream(publish_async_max_pending=_BATCHES * _IN_FLIGHT)
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=self.stream, subjects=[self.subject.wildcard],
                                             duplicate_window=2 * self.retry_for))
        return nc, js

    async def _check(self) -> None:
        nc, _ = await self._connect()
        await nc.close()  # type: ignore[attr-defined]

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        try:
            nc, js = await self._connect()
        except Exception as exc:  # reported by start(), one line; or counted, if later
            self._start_error = exc
            self._ready.set()
            self._error(exc)
            while not self._closing or self._queue:  # nothing will be sent: all is lost
                n = len(self._queue)
                self._queue.clear()
                self._give_up(n)
                with self._lock:
                    self._pending -= n
                if not self._closing:
                    self._wake.clear()
                    await self._wake.wait()
            return
        self._ready.set()
        slots = asyncio.Semaphore(_BATCHES)
        running: set[asyncio.Task[None]] = set()
        while True:
            if self._queue:
                await slots.acquire()
                batch = [self._queue.popleft()
                         for _ in range(min(len(self._queue), _IN_FLIGHT))]
                self.stats.published += len(batch)
                task = asyncio.ensure_future(self._send(nc, js, batch))
                running.add(task)
                task.add_done_callback(lambda t: (running.discard(t), slots.release()))
                continue
            if self._closing:
                break
            self._wake.clear()
            if not self._queue and not self._closing:
                await self._wake.wait()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), 5)

    async def _send(self, nc: object, js: object,
                    batch: list[tuple[str, bytes, str]]) -> None:
        """Publish a batch and wait once for its acknowledgements; resend what got none
        until it does or its time is up."""
        deadline = time.monotonic() + self.retry_for
        wait = 0.1
        todo = batch
        while todo:
            futures: dict[asyncio.Future, tuple[str, bytes, str]] = {}
            failed: list[tuple[str, bytes, str]] = []
            for item in todo:
                subject, payload, msg_id = item
                try:
                    if not nc.is_connected:  # type: ignore[attr-defined]
                        # Nothing goes into the client's buffer while it reconnects: a
                        # message given up on must not reach the server after all.
                        raise ConnectionError("not connected")
                    # No wait_stall: its wait_for would yield to the client's flusher after
                    # every message (one write each); a batch never fills the semaphore.
                    future = await js.publish_async(  # type: ignore[attr-defined]
                        subject, payload, stream=self.stream,
                        headers={"Nats-Msg-Id": msg_id})
                    futures[future] = item
                except Exception as exc:  # a closed or reconnecting connection, a stall
                    self._error(exc)
                    failed.append(item)
            if futures:
                done, late = await asyncio.wait(futures, timeout=self.ack_timeout)
                for f in late:
                    f.cancel()
                    failed.append(futures[f])
                for f in done:
                    exc = f.exception()
                    if exc is None:
                        self.stats.acknowledged += 1
                    else:
                        self._error(exc)
                        failed.append(futures[f])
                if late:
                    self._error(TimeoutError(f"no acknowledgement in {self.ack_timeout:g} s"))
            done_count = len(todo) - len(failed)
            todo = failed
            if todo:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._give_up(len(todo))
                    done_count += len(todo)
                    todo = []
                else:
                    self.stats.retries += len(todo)
                    await asyncio.sleep(min(wait, left))
                    wait = min(wait * 2, 1.0)
            with self._lock:
                self._pending -= done_count

    def _give_up(self, n: int) -> None:
        """``n`` messages will not be acknowledged: lost, and counted."""
        self.stats.lost_unacknowledged += n

    def _error(self, exc: BaseException) -> None:
        self.stats.last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
