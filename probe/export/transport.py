"""UDP and TCP transports of one export destination.

Neither may stall the pipeline for long: UDP sends are fire-and-forget (an ICMP port
unreachable shows up as ECONNREFUSED on a later send and is counted), TCP connects with a short
timeout and an exponential backoff on the monotonic clock (the packet clock of an offline
replay says nothing about how long to wait), and sends with a timeout after which the
connection is treated as lost.

A TCP send that succeeded only put the bytes in the kernel's send queue. ``settled`` says how
much of the connection's stream a collector that crashes now can no longer lose, so the
session keeps the records after that point and sends them again on the next connection.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import socket
import struct
import termios
import time

from probe.config.model import Destination

log = logging.getLogger(__name__)

DEFAULT_PACKET_SIZE = 1500  # RFC 6728 maxPacketSize when not configured: an Ethernet MTU
UDP_OVERHEAD = {socket.AF_INET: 20 + 8, socket.AF_INET6: 40 + 8}  # IP and UDP headers
UDP_MAX_IPV4 = DEFAULT_PACKET_SIZE - UDP_OVERHEAD[socket.AF_INET]
UDP_MAX_IPV6 = DEFAULT_PACKET_SIZE - UDP_OVERHEAD[socket.AF_INET6]
IPV4_MAX_PACKET = 65535  # an IPv4 total length, and any IPFIX message length
# Linux socket options for path MTU discovery (<linux/in.h>, <linux/in6.h>)
_IP_MTU_DISCOVER, _IP_PMTUDISC_DO, _IP_MTU = 10, 2, 14
_IPV6_MTU_DISCOVER, _IPV6_PMTUDISC_DO, _IPV6_MTU = 23, 2, 24
TCP_MAX = 65535  # IPFIX/v9 length field
CONNECT_TIMEOUT_S = 3.0
SEND_TIMEOUT_S = 5.0
BACKOFF_FIRST_S = 0.05
BACKOFF_CAP_S = 5.0
# What a collector killed now loses beyond the bytes its TCP has not acknowledged: the bytes
# its kernel acknowledged and it has not read (its receive queue: the window it advertises
# does not bound it, a reader that lags lets the queue grow to several times the largest
# window) and what it read and did not store yet. The records of the last RESEND_BYTES
# acknowledged are kept too: ``flowprobe collect`` lagging behind a replay held 4.6 MB so
# (the largest window it advertised was 0.9 MB); Linux autotunes a receive buffer to what
# the reader takes per round trip, so a slow reader's queue stays a few MB.
RESEND_BYTES = 8 << 20
RESEND_WINDOWS = 2  # ... or this many of the largest window it advertised, if more
_TCP_ESTABLISHED = 1
_TCPI_SND_WND = 228  # offset of tcpi_snd_wnd in struct tcp_info (Linux 5.19+)


def _resolve(dest: Destination, socktype: int) -> tuple[int, tuple]:
    infos = socket.getaddrinfo(dest.destination_address, dest.destination_port, 0, socktype)
    family, _, _, _, addr = infos[0]
    return family, addr


class _Paced:
    """Spreads sends so the average rate stays under ``rate_limit`` bytes per second."""

    def __init__(self, rate: int | None) -> None:
        self.rate = rate
        self._free_at = 0.0

    def wait(self, nbytes: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        if self._free_at > now:
            time.sleep(self._free_at - now)
            now = self._free_at
        self._free_at = now + nbytes / self.rate


class UdpTransport:
    reliable = False

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        family, addr = _resolve(dest, socket.SOCK_DGRAM)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if dest.send_buffer_size:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, dest.send_buffer_size)
        if dest.source_address:
            self.sock.bind((dest.source_address, 0))
        self.sock.connect(addr)
        # RFC 6728 maxPacketSize is the size of the IP packet: the message is what is left
        # after the IP and UDP headers. 0 asks for the path MTU: the kernel's, with the
        # don't-fragment bit set so that it learns a smaller one from the network (ICMP
        # "fragmentation needed"), which the next send then reports as EMSGSIZE.
        self._overhead = UDP_OVERHEAD[family]
        self._v6 = family == socket.AF_INET6
        self.path_mtu = dest.max_packet_size == 0
        if self.path_mtu:
            level = socket.IPPROTO_IPV6 if self._v6 else socket.IPPROTO_IP
            self.sock.setsockopt(level, _IPV6_MTU_DISCOVER if self._v6 else _IP_MTU_DISCOVER,
                                 _IPV6_PMTUDISC_DO if self._v6 else _IP_PMTUDISC_DO)
            self.max_size = self._mtu_message_size()
        else:
            packet = dest.max_packet_size or DEFAULT_PACKET_SIZE
            self.max_size = min(packet, IPV4_MAX_PACKET) - self._overhead
        self._pace = _Paced(dest.rate_limit)
        self.last_error: str | None = None
        self.shrunk = False  # the last send failed: the path MTU shrank (EMSGSIZE)
        self.refusals = 0  # ICMP port unreachable reports: nobody listens at the destination
        self.refused_at = float("-inf")

    @property
    def up(self) -> bool:
        return True

    def _mtu_message_size(self) -> int:
        """The largest message the path MTU lets through in one IP packet, unfragmented."""
        level = socket.IPPROTO_IPV6 if self._v6 else socket.IPPROTO_IP
        mtu = self.sock.getsockopt(level, _IPV6_MTU if self._v6 else _IP_MTU)
        return min(mtu, IPV4_MAX_PACKET) - self._overhead

    def poll(self) -> bool:
        """Nothing to (re)establish for UDP; returns whether a new session started."""
        return False

    def send(self, msg: bytes) -> bool:
        self._pace.wait(len(msg))
        for _ in range(2):
            try:
                self.sock.send(msg)
                return True
            except ConnectionRefusedError as exc:
                # An ICMP port unreachable for an earlier datagram: Linux reports it on this
                # send and drops this datagram, which itself may well be received: retry once.
                self.last_error = str(exc)
                self.refusals += 1
                self.refused_at = time.monotonic()
            except OSError as exc:
                self.last_error = str(exc)
                if exc.errno == errno.EMSGSIZE and self.path_mtu:
                    # the path MTU shrank: nothing was sent, the session sends it again in
                    # messages that fit the new one
                    self.max_size = self._mtu_message_size()
                    self.shrunk = True
                    log.warning("export destination %s: the path MTU is now %d: messages of "
                                "at most %d octets", self.dest.name,
                                self.max_size + self._overhead, self.max_size)
                return False
        return False

    def close(self) -> None:
        self.sock.close()


class TcpTransport:
    reliable = True

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        _resolve(dest, socket.SOCK_STREAM)  # a name that never resolves is the user's error
        self.max_size = min(dest.max_packet_size or TCP_MAX, TCP_MAX)
        self.sock: socket.socket | None = None
        self._pace = _Paced(dest.rate_limit)
        self._backoff = BACKOFF_FIRST_S
        self._next_try = 0.0
        self._connecting: socket.socket | None = None
        self._connect_deadline = 0.0
        self.connects = 0
        self.last_error: str | None = None
        self.written = 0  # bytes sent on the current connection
        self.max_window = 0  # the largest receive window the collector advertised on it

    @property
    def up(self) -> bool:
        return self.sock is not None

    def settled(self) -> int | None:
        """How many bytes of this connection's stream a crash of the collector can no longer
        lose: written, acknowledged by the collector's TCP (SIOCOUTQ counts the bytes still
        unsent or unacknowledged), and more than RESEND_BYTES (or twice the largest window
        the collector advertised, if larger) before the acknowledged end. None while the
        connection is not established: after a reset the kernel empties the send queue, and
        SIOCOUTQ would claim everything was acknowledged.
        """
        if self.sock is None:
            return None
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            outq = struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ,
                                                  b"\0\0\0\0"))[0]
        except OSError:
            return None
        if info[0] != _TCP_ESTABLISHED:
            return None
        if len(info) >= _TCPI_SND_WND + 4:
            self.max_window = max(self.max_window,
                                  struct.unpack_from("I", info, _TCPI_SND_WND)[0])
        return self.written - outq - max(RESEND_BYTES, RESEND_WINDOWS * self.max_window)

    def poll(self) -> bool:
        """Notice a collector that went away; (re)connect when the backoff allows.

        The connect is non-blocking: one call starts it, a later one sees it complete, so a
        collector that does not answer never stalls the pipeline. Returns True when a new
        connection (a new transport session) has just been established.
        """
        if self.sock is not None and self._peer_closed():
            self.drop("collector closed the connection")
        if self.sock is not None:
            return False
        if self._connecting is None:
            if time.monotonic() < self._next_try:
                return False
            try:
                family, addr = _resolve(self.dest, socket.SOCK_STREAM)
                s = socket.socket(family, socket.SOCK_STREAM)
                s.setblocking(False)
                if self.dest.send_buffer_size:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.dest.send_buffer_size)
                if self.dest.source_address:
                    s.bind((self.dest.source_address, 0))
            except OSError as exc:
                self._failed(str(exc))
                return False
            err = s.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                s.close()
                self._failed(os.strerror(err))
                return False
            self._connecting = s
            self._connect_deadline = time.monotonic() + CONNECT_TIMEOUT_S
        s = self._connecting
        _, writable, _ = select.select([], [s], [], 0)
        if not writable:
            if time.monotonic() > self._connect_deadline:
                self._connecting = None
                s.close()
                self._failed("connect timed out")
            return False
        self._connecting = None
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            s.close()
            self._failed(os.strerror(err))
            return False
        return self._established(s)

    def _established(self, s: socket.socket) -> bool:
        """The connection is up: the session starts on it (TLS first shakes hands)."""
        s.setblocking(True)
        s.settimeout(SEND_TIMEOUT_S)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self._backoff = BACKOFF_FIRST_S
        self.connects += 1
        self.written = 0
        self.max_window = 0
        log.info("connected to %s", self.dest.name)
        return True

    def _failed(self, why: str) -> None:
        self.last_error = why
        self._next_try = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_CAP_S)

    def _peer_closed(self) -> bool:
        # A collector never writes to us, so readable means EOF or reset.
        assert self.sock is not None
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                return False
            return self.sock.recv(4096, socket.MSG_DONTWAIT) == b""
        except OSError:
            return True

    def drop(self, why: str) -> None:
        if self.sock is not None:
            log.warning("lost connection to %s: %s", self.dest.name, why)
            self.last_error = why
            self.sock.close()
            self.sock = None
            self._next_try = time.monotonic() + self._backoff

    def send(self, msg: bytes) -> bool:
        if self.sock is None:
            return False
        self._pace.wait(len(msg))
        try:
            self.sock.sendall(msg)
        except OSError as exc:
            self.drop(str(exc))
            return False
        self.written += len(msg)
        return True

    def finish(self, deadline: float) -> bool:
        """End the stream and wait (until ``deadline``, monotonic) for the collector to close
        its side, which it does once it has read everything before our end: True then. False
        when the connection broke instead (it is dropped) or the collector is still reading."""
        if self.sock is None:
            return False
        try:
            self.sock.shutdown(socket.SHUT_WR)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                if not self.sock.recv(4096):
                    return True
        except TimeoutError:
            return False
        except OSError as exc:
            self.drop(str(exc))
            return False

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
                # Wait briefly for the collector to read everything and close its side.
                self.sock.settimeout(1.0)
                while self.sock.recv(4096):
                    pass
            self.sock.close()
            self.sock = None
        if self._connecting is not None:
            self._connecting.close()
            self._connecting = None
