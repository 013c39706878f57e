"""The collector's transport loop: UDP and TCP sockets on one thread with ``selectors``.

One thread, no locks: the loop owns the Decoder. It reads every message the kernel holds
(up to a bound per socket and round), lets the Decoder queue their Data Sets, and flushes
the queue as ``FlowBatch``es to an ``on_batches`` callable when ``FLUSH_RECORDS`` records wait
or the oldest has waited ``FLUSH_DELAY_S``: under load a batch holds thousands of records
(the column decode's cost per call is paid once for them), and a lone message is out within
the delay.
``stop()`` is safe from a signal handler or another thread (it writes one byte to a wake-up
socket); the loop then drains what the kernel already holds (UDP datagrams, unread TCP bytes)
before it returns, so a sender that finished before ``stop()`` loses nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable

from probe.collect.decoder import Decoder
from probe.collect.flows import FlowBatch
from probe.collect.framing import StreamFramer
from probe.collect.listen import MAX_COUNT, Endpoint, parse_listen
from probe.collect.tlsaccept import HANDSHAKE_TIMEOUT_S, TlsAcceptor, say_goodbye, tls_pending
from probe.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["MAX_COUNT", "CollectorLoop", "Endpoint", "open_endpoint", "parse_listen"]

OnBatches = Callable[[list[FlowBatch]], None]
DEFAULT_RCVBUF = 64 * 1024 * 1024  # a burst replay must not overrun the socket buffer
FLUSH_RECORDS = 16_384  # flush the decode queue when this many records wait
FLUSH_DELAY_S = 0.05  # ... or when the oldest has waited this long
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_DRAIN_LIMIT = 200_000  # datagrams read after stop()


def grow_rcvbuf(sock: socket.socket, size: int) -> None:
    """Ask for ``size`` bytes of receive buffer: SO_RCVBUFFORCE passes net.core.rmem_max where
    the process may (CAP_NET_ADMIN), else SO_RCVBUF gets what the limit allows."""
    for opt in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
            return
        except OSError:
            continue


def udp_socket_stats(socks: list[socket.socket]) -> dict[int, tuple[str, int, int]]:
    """Drops and queued bytes of our UDP sockets, from /proc/net/udp{,6} (Linux): the kernel's
    own count of datagrams lost to a full receive buffer, the one loss a collector cannot see
    otherwise. Empty where /proc says nothing."""
    want: dict[int, str] = {}
    for sock in socks:
        with contextlib.suppress(OSError):
            if sock.type == socket.SOCK_DGRAM:
                want[os.fstat(sock.fileno()).st_ino] = f"udp:{sock.getsockname()[1]}"
    out: dict[int, tuple[str, int, int]] = {}
    if not want:
        return out
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9].isdigit() and int(cols[9]) in want:
                        inode = int(cols[9])
                        rx = int(cols[4].split(":")[1], 16)
                        out[inode] = (want[inode], int(cols[12]), rx)
        except OSError:
            continue
    return out


def open_endpoint(ep: Endpoint, rcvbuf: int | None = None
                  ) -> tuple[Endpoint, list[socket.socket]]:
    """Open ``ep.count`` non-blocking sockets on the endpoint; a bad address or a port in use
    is a UserError (exit 2). With a count above 1 they share the port with SO_REUSEPORT, so
    the kernel spreads exporters over them by their address and port (one exporter's messages
    always reach the same socket, and so the same worker and its templates)."""
    try:
        infos = socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_DGRAM
                                   if ep.transport == "udp" else socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"{ep.url()}: cannot resolve {ep.host}: {exc.strerror}") from None
    family, stype, proto, _, addr = infos[0]
    socks: list[socket.socket] = []
    try:
        for _ in range(ep.count):
            sock = socket.socket(family, stype, proto)
            socks.append(sock)
            if ep.transport == "udp":  # no SO_REUSEADDR: a second collector must fail
                grow_rcvbuf(sock, rcvbuf or DEFAULT_RCVBUF)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if ep.count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(addr)
            addr = sock.getsockname()  # port 0: the others join the port the first got
            if ep.transport == "tcp":
                sock.listen(64)
            sock.setblocking(False)
    except OSError as exc:
        for sock in socks:
            sock.close()
        what = "port in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise UserError(f"{ep.url()}: cannot listen: {what}") from None
    host, port = socks[0].getsockname()[:2]
    return Endpoint(ep.transport, host, port, ep.count, ep.accept, ep.scheme, ep.tls), socks


def _exporter_ip(addr: str) -> str:
    return addr[7:] if addr.startswith("::ffff:") and "." in addr else addr


class _Conn:
    __slots__ = ("framer", "key", "peer", "sock")

    def __init__(self, sock: socket.socket, key: tuple, peer: str, framer: StreamFramer) -> None:
        self.sock, self.key, self.peer, self.framer = sock, key, peer, framer


class CollectorLoop:
    def __init__(self, endpoints: list[Endpoint], on_batches: OnBatches,
                 decoder: Decoder | None = None, rcvbuf: int | None = None) -> None:
        self.endpoints = endpoints
        self.on_batches = on_batches
        self.decoder = decoder or Decoder()
        self.rcvbuf = rcvbuf
        self._queued_at: float | None = None  # when the oldest queued record arrived
        self.sel = selectors.DefaultSelector()
        self.bound: list[Endpoint] = []
        self._socks: list[socket.socket] = []
        self._conns: dict[int, _Conn] = {}
        self._udp_ports: dict[int, int] = {}  # fd -> local port (part of the UDP session key)
        self._udp_accept: dict[int, str] = {}  # fd -> "netflow", "sflow" or "flow"
        self._tls: dict[int, TlsAcceptor] = {}  # listening fd -> its TLS (tls:// endpoints)
        self._shaking: dict[int, tuple[TlsAcceptor, tuple, float]] = {}  # fd -> handshake
        self._serial = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self.on_idle: Callable[[], None] | None = None  # called about once a second

    # ------------------------------------------------------------------ setup
    def bind(self) -> list[Endpoint]:
        """Open every endpoint; a bad address or a port in use is a UserError (exit 2)."""
        try:
            for ep in self.endpoints:
                bound, socks = open_endpoint(ep, self.rcvbuf)
                self.bound.append(bound)
                self.adopt(socks, ep.accept)
                if ep.tls is not None:
                    acceptor = TlsAcceptor(ep.tls, bound.url())
                    self._tls.update((s.fileno(), acceptor) for s in socks)
        except BaseException:
            self.close()
            raise
        return self.bound

    def adopt(self, socks: list[socket.socket], accept: str | list[str] = "netflow") -> None:
        """Serve sockets opened elsewhere (a worker is handed its share of the parent's).
        ``accept``: what each takes (``probe.collect.listen``), one for all or one each."""
        if not self._socks:
            self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        accepts = [accept] * len(socks) if isinstance(accept, str) else accept
        for sock, takes in zip(socks, accepts, strict=True):
            kind = "udp" if sock.type == socket.SOCK_DGRAM else "tcp"
            self._socks.append(sock)
            self.sel.register(sock, selectors.EVENT_READ, (kind, sock))
            if kind == "udp":
                self._udp_ports[sock.fileno()] = sock.getsockname()[1]
                self._udp_accept[sock.fileno()] = takes

    # ------------------------------------------------------------------ run / stop
    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _select_timeout(self) -> float:
        if self._queued_at is None:
            return 1.0
        return max(0.0, self._queued_at + FLUSH_DELAY_S - time.monotonic())

    def _queued(self) -> None:
        """After reading: flush the decode queue if it is full or old enough."""
        n = self.decoder.pending_records or len(self.decoder.table.pending.ready)
        if not n:
            return
        now = time.monotonic()
        if self._queued_at is None:
            self._queued_at = now
        if n >= FLUSH_RECORDS or now - self._queued_at >= FLUSH_DELAY_S:
            self.flush()

    def flush(self) -> None:
        self._queued_at = None
        batches = self.decoder.flush()
        if batches:
            self.on_batches(batches)

    def run(self) -> None:
        last_expire = time.monotonic()
        while not self._stopping:
            for key, _ in self.sel.select(timeout=self._select_timeout()):
                kind, sock = key.data
                if kind == "udp":
                    self._read_udp(sock)
                elif kind == "tcp":
                    self._accept(sock)
                elif kind == "conn":
                    self._read_conn(sock)
                elif kind == "shake":
                    self._shake(sock)
                else:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
            self._queued()
            now = time.monotonic()
            if now - last_expire >= 1.0:
                self.decoder.expire(now)
                self._expire_handshakes(now)
                last_expire = now
                self.decoder.stats.sockets = self.socket_stats()
                self.decoder.stats.templates_known = self.decoder.table.template_count()
                if self.on_idle is not None:
                    self.on_idle()
        self._drain()

    def socket_stats(self) -> dict[int, tuple[str, int, int]]:
        """Per UDP socket (by inode): its local port as text, the datagrams the kernel dropped
        because the receive buffer was full, and the bytes waiting in it."""
        return udp_socket_stats(self._socks)

    def _drain(self) -> None:
        """After stop: decode what the kernel already holds, then end every TCP stream."""
        for sock in self._socks:
            if sock.type == socket.SOCK_DGRAM:  # bounded: a sender that never stops must not
                self._read_udp(sock, limit=_DRAIN_LIMIT)  # keep us from exiting
        for fd in list(self._conns):  # bounded too: a TCP sender may outrun the decoder
            conn = self._conns[fd]
            self._read_conn(conn.sock, limit=_DRAIN_LIMIT // 16)
            if fd in self._conns:
                self._end_conn(conn)
        self.flush()

    def close(self) -> None:
        for conn in list(self._conns.values()):
            self._end_conn(conn)
        for fd in list(self._shaking):
            key = self.sel.get_map().get(fd)
            if key is not None:
                self._end_shake(key.fileobj)  # type: ignore[arg-type]
        for sock in self._socks:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(sock)
            sock.close()
        self._socks.clear()
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------------ UDP
    def _read_udp(self, sock: socket.socket, limit: int | None = 256) -> None:
        n = 0
        port = self._udp_ports.get(sock.fileno(), 0)
        accept = self._udp_accept.get(sock.fileno(), "netflow")
        while limit is None or n < limit:
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            n += 1
            ip = _exporter_ip(addr[0])
            self.decoder.feed(data, ip, ("udp", ip, addr[1], port), accept=accept)
            if self.decoder.pending_records >= FLUSH_RECORDS:
                self.flush()

    # ------------------------------------------------------------------ TCP
    def _accept(self, lsock: socket.socket) -> None:
        try:
            sock, addr = lsock.accept()
        except OSError:
            return
        if len(self._conns) + len(self._shaking) >= self.decoder.limits.max_connections:
            self.decoder.stats.bad("tcp_connection_limit")
            sock.close()
            return
        sock.setblocking(False)
        acceptor = self._tls.get(lsock.fileno())
        if acceptor is not None:  # TLS: shake hands first (TlsAcceptor.step)
            try:
                tsock = acceptor.wrap(sock)
            except (OSError, ValueError):
                sock.close()
                return
            self._shaking[tsock.fileno()] = (acceptor, (addr, lsock.getsockname()[1]),
                                             time.monotonic())
            self.sel.register(tsock, selectors.EVENT_READ, ("shake", tsock))
            return
        self._start_conn(sock, addr, lsock.getsockname()[1])

    def _shake(self, sock: ssl.SSLSocket) -> None:
        acceptor, (addr, port), _ = self._shaking[sock.fileno()]
        step = acceptor.step(sock)
        if isinstance(step, str):
            log.warning("%s: refused %s port %d: %s", acceptor.where, addr[0], addr[1], step)
            self.decoder.stats.bad("tls_refused")
            self._end_shake(sock)
        elif step:
            self.sel.modify(sock, step, ("shake", sock))
        else:
            self._end_shake(sock, keep=True)
            self._start_conn(sock, addr, port)
            self._read_conn(sock)  # what came with the handshake's last flight

    def _end_shake(self, sock: socket.socket, keep: bool = False) -> None:
        self._shaking.pop(sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)
        if not keep:
            sock.close()

    def _expire_handshakes(self, now: float) -> None:
        for fd, (acceptor, (addr, _), since) in list(self._shaking.items()):
            if now - since > HANDSHAKE_TIMEOUT_S:
                key = self.sel.get_map().get(fd)
                if key is not None:
                    log.warning("%s: refused %s port %d: no TLS handshake within %.0f s",
                                acceptor.where, addr[0], addr[1], HANDSHAKE_TIMEOUT_S)
                    self.decoder.stats.bad("tls_refused")
                    self._end_shake(key.fileobj)  # type: ignore[arg-type]

    def _start_conn(self, sock: socket.socket, addr: tuple, local_port: int) -> None:
        """A TCP transport session begins (after its handshake, over TLS)."""
        self._serial += 1
        ip = _exporter_ip(addr[0])
        key = ("tcp", ip, addr[1], local_port, self._serial)
        table = self.decoder.table

        def record_length(source_id: int, tid: int) -> int | None:
            s = table.sessions.get(key)
            t = s.templates.get((source_id, tid)) if s is not None else None
            return t.record_len if t is not None else None

        conn = _Conn(sock, key, ip, StreamFramer(record_length,
                                                 self.decoder.limits.max_tcp_buffer))
        self._conns[sock.fileno()] = conn
        self.sel.register(sock, selectors.EVENT_READ, ("conn", sock))

    def _read_conn(self, sock: socket.socket, limit: int | None = 16) -> None:
        conn = self._conns.get(sock.fileno())
        if conn is None:
            return
        n = 0
        while limit is None or n < limit or tls_pending(sock):
            n += 1
            try:
                data = sock.recv(262144)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return
            except OSError:
                data = b""
            if not data:
                self._end_conn(conn)
                return
            messages, problem = conn.framer.feed(data)
            self._decode_stream(conn, messages)
            if problem is not None:
                self.decoder.stats.bad(problem)
                self._end_conn(conn, flush=False)
                return

    def _decode_stream(self, conn: _Conn, messages: list[bytes]) -> None:
        for msg in messages:
            self.decoder.feed(msg, conn.peer, conn.key)
            if self.decoder.pending_records >= FLUSH_RECORDS:
                self.flush()

    def _end_conn(self, conn: _Conn, flush: bool = True) -> None:
        rest = conn.framer.flush()
        if flush and rest:
            self._decode_stream(conn, [rest])
        fd = conn.sock.fileno()
        self._conns.pop(fd, None)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        say_goodbye(conn.sock)
        conn.sock.close()
        self.decoder.close_session(conn.key)
