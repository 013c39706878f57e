"""``?count=N``: N worker processes, each serving its own SO_REUSEPORT socket of the port.

The parent opens every socket (so a port in use is one error line and exit 2 before anything
starts) and forks one worker per socket index: worker i serves socket i of every endpoint with
a count above i. The kernel sends each exporter (address and port) to one socket, so a worker
decodes with its own Decoder and needs only the templates of the exporters it hears (they are
kept per transport session and observation domain, RFC 7011 §8).

Workers do not write the output themselves: each encodes its batches (``encode``) and sends
the bytes to the parent in frames over a pipe; the parent writes whole frames, one at a time,
so lines of two workers never interleave, whatever the output is (a file, a pipe, a terminal).
A worker also sends its statistics every second and when it ends, so the parent can print and
serve the sum. SIGINT/SIGTERM to the parent stops the workers; each drains what its sockets
hold, flushes and sends its last statistics before the parent returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import selectors
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from probe.collect.decoder import Decoder
from probe.collect.flows import FlowBatch
from probe.collect.limits import Limits
from probe.collect.server import CollectorLoop, Endpoint, open_endpoint
from probe.collect.stats import CollectStats, merge

Encode = Callable[[list[FlowBatch]], list[bytes]]  # batches -> pieces of output, in order
_HEAD = struct.Struct(">BI")
_OUT, _STATS = 1, 2
_STATS_EVERY_S = 1.0
_PIPE_SIZE = 1 << 20  # a worker's pipe to the parent (Linux's default limit for a user)


@dataclass
class WorkerSet:
    """The parent's view: what each worker said last, and the output sink."""

    write: Callable[[bytes], None]
    stats: dict[int, CollectStats] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)

    def total(self) -> CollectStats:
        return merge(list(self.stats.values()))


def worker_count(endpoints: list[Endpoint]) -> int:
    return max((ep.count for ep in endpoints), default=1)


def _send(fd: int, kind: int, payload: bytes) -> None:
    """One frame: its header and the payload as they are (no joined copy of megabytes)."""
    parts = [memoryview(_HEAD.pack(kind, len(payload))), memoryview(payload)]
    while parts:
        n = os.writev(fd, parts)
        while parts and n >= len(parts[0]):
            n -= len(parts[0])
            parts.pop(0)
        if parts:
            parts[0] = parts[0][n:]


def _worker(index: int, socks: list[socket.socket], fd: int, limits: Limits, encode: Encode,
            accepts: list[str]) -> None:
    decoder = Decoder(limits)
    bind = getattr(encode, "bind", None)
    if bind is not None:  # the encoder counts what it leaves out with the worker's statistics
        bind(decoder.stats)
    last = [time.monotonic()]

    def report() -> None:
        decoder.stats.sockets = loop.socket_stats()
        _send(fd, _STATS, pickle.dumps(decoder.stats))

    def on_batches(batches: list[FlowBatch]) -> None:
        for piece in encode(batches):
            if piece:
                _send(fd, _OUT, piece)
        now = time.monotonic()
        if now - last[0] >= _STATS_EVERY_S:
            last[0] = now
            report()

    loop = CollectorLoop([], on_batches, decoder)
    loop.adopt(socks, accepts)
    loop.on_idle = report
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        loop.run()
        decoder.finish()
        report()
    finally:
        loop.close()


def serve(endpoints: list[Endpoint], limits: Limits, encode: Encode,
          write: Callable[[bytes], None], rcvbuf: int | None = None,
          on_bound: Callable[[list[Endpoint]], None] | None = None,
          stop_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
          share: Callable[[WorkerSet], None] | None = None) -> CollectStats:
    """Run the workers until a stop signal; returns the sum of their statistics."""
    opened: list[tuple[Endpoint, list[socket.socket]]] = []
    try:
        for ep in endpoints:
            opened.append(open_endpoint(ep, rcvbuf))
    except BaseException:
        for _, socks in opened:
            for s in socks:
                s.close()
        raise
    if on_bound is not None:
        on_bound([b for b, _ in opened])
    n = worker_count(endpoints)
    ws = WorkerSet(write)
    if share is not None:
        share(ws)
    pipes: dict[int, int] = {}
    for i in range(n):
        r, w = os.pipe()
        with contextlib.suppress(OSError):  # fewer, larger hand-overs of the output
            fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                os.close(r)
                for fd in pipes:
                    os.close(fd)
                mine = [socks[i] for _, socks in opened if len(socks) > i]
                accepts = [ep.accept for ep, socks in opened if len(socks) > i]
                for _, socks in opened:
                    for s in socks:
                        if not any(s is m for m in mine):
                            s.close()
                _worker(i, mine, w, limits, encode, accepts)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        pipes[r] = i
        ws.pids.append(pid)
    for _, socks in opened:
        for s in socks:
            s.close()
    _join(ws, pipes, stop_signals)
    return ws.total()


def _join(ws: WorkerSet, pipes: dict[int, int], stop_signals: tuple[int, ...]) -> None:
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    stopping = [False]

    def stop(*_: object) -> None:
        stopping[0] = True
        with contextlib.suppress(OSError):
            wake_w.send(b"x")

    previous = {s: signal.signal(s, stop) for s in stop_signals}
    sel = selectors.DefaultSelector()
    readers: dict[int, _Reader] = {}
    for fd in pipes:
        sel.register(fd, selectors.EVENT_READ)
        readers[fd] = _Reader(fd)
    sel.register(wake_r, selectors.EVENT_READ)
    signalled = False
    try:
        while pipes:
            if stopping[0] and not signalled:
                signalled = True
                for pid in ws.pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            for key, _ in sel.select(timeout=1.0):
                if key.fileobj is wake_r:
                    with contextlib.suppress(OSError):
                        wake_r.recv(64)
                    continue
                fd = key.fd
                frame = readers[fd].read()
                if frame is None:  # the worker is gone
                    sel.unregister(fd)
                    os.close(fd)
                    del pipes[fd]
                elif frame:
                    kind, payload = frame
                    if kind == _OUT:
                        ws.write(payload)
                    elif kind == _STATS:
                        ws.stats[pipes[fd]] = pickle.loads(payload)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        sel.close()
        wake_r.close()
        wake_w.close()
        for pid in ws.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


class _Reader:
    """A worker's frames, read from its pipe straight into a buffer of the frame's size (the
    parent handles every output byte of every worker: one copy from the kernel, none more)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.head = bytearray(_HEAD.size)
        self.kind = 0
        self.body: bytearray | None = None  # the payload being read, None: the header
        self.got = 0

    def read(self) -> tuple[int, bytearray] | tuple[()] | None:
        """One read: a whole frame (kind, payload), () when it is not whole yet, None at the
        end of the pipe."""
        target = self.head if self.body is None else self.body
        if len(target) > self.got:
            n = os.readv(self.fd, [memoryview(target)[self.got:]])
            if n == 0:
                return None
            self.got += n
            if self.got < len(target):
                return ()
        if self.body is None:
            self.kind, length = _HEAD.unpack(self.head)
            self.body, self.got = bytearray(length), 0
            return () if length else self._done()
        return self._done()

    def _done(self) -> tuple[int, bytearray]:
        assert self.body is not None
        frame = (self.kind, self.body)
        self.body, self.got = None, 0
        return frame
