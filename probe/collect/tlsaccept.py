"""The Collecting Process's side of IPFIX over TLS (RFC 7011 §11.3): a tcpCollector with
transportLayerSecurity.

Each accepted connection shakes hands before any message is read, without blocking the
collector's one thread: ``step`` is called whenever the socket is ready and says what to wait
for next, until the exporter is accepted (its certificate signed by a trusted authority, and
its names among those configured, ``probe.tls.peer_problem``) or refused with the reason, which
the loop says in one line. Then the connection is read like any TCP one, the records it
carries decrypted.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl

from probe.tls import TlsSettings, context, handshake_problem, peer_problem

HANDSHAKE_TIMEOUT_S = 10.0  # an exporter that connects and never shakes hands is let go


class TlsAcceptor:
    """The TLS settings of one listening socket."""

    def __init__(self, tls: TlsSettings, where: str) -> None:
        self.tls = tls
        self.where = where
        self.ctx = context(tls, server=True, where=where)

    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

    def step(self, tsock: ssl.SSLSocket) -> int | str:
        """Go on with the handshake: the selector event to wait for, 0 once the exporter is
        accepted, or why it is refused."""
        try:
            tsock.do_handshake()
        except ssl.SSLWantReadError:
            return selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            return selectors.EVENT_WRITE
        except ssl.SSLError as exc:
            return handshake_problem(exc)
        except OSError as exc:
            return f"the exporter ended the TLS handshake: {exc.strerror or exc}"
        return peer_problem(tsock.getpeercert(), self.tls) or 0


def tls_pending(sock: socket.socket) -> bool:
    """Decrypted bytes already read from the kernel: no select will say they are there."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def say_goodbye(sock: socket.socket) -> None:
    """Answer the exporter's close_notify with ours (its end of stream is then confirmed)."""
    if isinstance(sock, ssl.SSLSocket):
        with contextlib.suppress(OSError, ValueError):
            sock.unwrap()
