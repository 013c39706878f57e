"""IPFIX over TLS over TCP (RFC 7011 §11.3, §10.4): a tcpExporter with transportLayerSecurity.

The TCP transport with a handshake between connect and the first message, and a TLS end of
stream. The handshake is non-blocking like the connect (one ``poll`` starts it, later ones
continue it), so a collector that never answers does not stall the pipeline. A collector whose
certificate no trusted authority signed, or whose names are not those configured
(``probe.tls.peer_problem``), is refused: one log line per reason, then the usual backoff and
retries, and what could not be sent is counted as not sent with that reason.

With TLS 1.3 the collector checks the probe's certificate after the probe has finished its
side of the handshake: a collector that refuses it answers with an alert on the first
message, and the connection is lost there, with the collector's reason.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import time

from probe.config.model import Destination
from probe.export.transport import CONNECT_TIMEOUT_S, SEND_TIMEOUT_S, TcpTransport
from probe.tls import context, handshake_problem, peer_problem

log = logging.getLogger(__name__)


class TlsTransport(TcpTransport):
    def __init__(self, dest: Destination) -> None:
        super().__init__(dest)
        assert dest.tls is not None
        self.tls = dest.tls
        self.ctx = context(dest.tls, server=False, where=f"export destination {dest.name}")
        self._shaking: ssl.SSLSocket | None = None
        self._shake_deadline = 0.0
        self._said: set[str] = set()

    def poll(self) -> bool:
        if self._shaking is not None:
            return self._shake()
        return super().poll()

    def _established(self, s: socket.socket) -> bool:
        """TCP is up: start the handshake (the socket is still non-blocking)."""
        names = self.tls.remote_subject_fqdns
        try:
            self._shaking = self.ctx.wrap_socket(s, server_hostname=names[0] if names else None,
                                                 do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as exc:
            s.close()
            self._refused(str(exc))
            return False
        self._shake_deadline = time.monotonic() + CONNECT_TIMEOUT_S
        return self._shake()

    def _shake(self) -> bool:
        t = self._shaking
        assert t is not None
        try:
            t.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if time.monotonic() <= self._shake_deadline:
                return False
            self._end_shake(t, "the TLS handshake timed out")
            return False
        except ssl.SSLError as exc:
            self._end_shake(t, handshake_problem(exc))
            return False
        except OSError as exc:  # reset or closed by the collector during the handshake
            self._end_shake(t, f"the collector ended the TLS handshake: {exc.strerror or exc}")
            return False
        self._shaking = None
        problem = peer_problem(t.getpeercert(), self.tls)
        if problem:
            t.close()
            self._refused(problem)
            return False
        log.info("export destination %s: TLS %s, %s", self.dest.name, t.version(),
                 t.cipher()[0] if t.cipher() else "")
        return super()._established(t)

    def _end_shake(self, t: ssl.SSLSocket, why: str) -> None:
        self._shaking = None
        t.close()
        self._refused(why)

    def _refused(self, why: str) -> None:
        """No session: said once per reason (the retries would repeat it), then backoff."""
        if why not in self._said:
            self._said.add(why)
            log.error("export destination %s: no TLS session with %s port %d: %s",
                      self.dest.name, self.dest.destination_address, self.dest.destination_port,
                      why)
        self._failed(why)

    def _peer_closed(self) -> bool:
        """A collector never writes application data: readable is EOF, an alert, or a TLS 1.3
        session ticket (which is no reason to go)."""
        s = self.sock
        assert isinstance(s, ssl.SSLSocket)
        try:
            readable, _, _ = select.select([s], [], [], 0)
            if not readable and not s.pending():
                return False
            s.settimeout(0)
            try:
                return s.recv(4096) == b""
            finally:
                s.settimeout(SEND_TIMEOUT_S)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            return True

    def finish(self, deadline: float) -> bool:
        """TLS end of stream (close_notify), then wait for the collector's end: it closes (or
        answers close_notify) once it has read everything before ours."""
        s = self.sock
        if not isinstance(s, ssl.SSLSocket):
            return False
        try:
            s.settimeout(max(deadline - time.monotonic(), 0.001))
            s.unwrap().close()
            self.sock = None
            return True
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return True  # it read to our close_notify and closed the connection
        except TimeoutError:
            return False
        except OSError as exc:
            if exc.errno in (None, 0):  # OpenSSL's EOF from a peer that closed, as above
                return True
            self.drop(str(exc))
            return False

    def close(self) -> None:
        s = self.sock
        if isinstance(s, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):
                s.settimeout(1.0)
                s.unwrap().close()
            s.close()
            self.sock = None
        if self._shaking is not None:
            self._shaking.close()
            self._shaking = None
        super().close()
