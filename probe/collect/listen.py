"""Listen URLs, goflow2's scheme: which socket to open, which protocols it takes, how many.

=================  =========  ===========================================
URL                transport  decodes
=================  =========  ===========================================
``netflow://H:P``  UDP        NetFlow v5, v9, IPFIX
``sflow://H:P``    UDP        sFlow v5
``flow://H:P``     UDP        all of them (told apart by the first octets)
``udp://H:P``      UDP        NetFlow v5, v9, IPFIX (as ``netflow://``)
``tcp://H:P``      TCP        NetFlow v5, v9, IPFIX
=================  =========  ===========================================

IPv6 hosts go in brackets, no host (``sflow://:6343``) is 0.0.0.0; port 0 picks a free one.
A config's tcpCollector with transportLayerSecurity is a TCP endpoint with ``tls`` set (it
has no URL of its own; it shows as ``tls://H:P``).
``?count=N`` (goflow2's) opens N sockets on the port, one worker each
(``probe.collect.workers``). A datagram of the other family on a ``netflow://`` or
``sflow://`` socket is counted as refused, not decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from probe.errors import UserError

# scheme -> (transport, what it decodes)
SCHEMES = {"netflow": ("udp", "netflow"), "sflow": ("udp", "sflow"), "flow": ("udp", "flow"),
           "udp": ("udp", "netflow"), "tcp": ("tcp", "netflow")}
MAX_COUNT = 64


@dataclass(frozen=True, slots=True)
class Endpoint:
    transport: str  # "udp" or "tcp"
    host: str
    port: int
    count: int = 1  # sockets (and worker processes) sharing the port with SO_REUSEPORT
    accept: str = "netflow"  # "netflow", "sflow" or "flow" (both)
    scheme: str = ""  # as the user wrote it; "" = the transport's name
    tls: Any = field(default=None, compare=False)  # TCP over TLS: probe.tls.TlsSettings

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?count={self.count}" if self.count > 1 else ""
        scheme = "tls" if self.tls is not None else self.scheme or self.transport
        return f"{scheme}://{host}:{self.port}{query}"


def parse_listen(url: str) -> Endpoint:
    """A listen URL (table above), optionally ``?count=N`` -> Endpoint; anything else is a
    UserError naming it."""
    try:
        parts = urlsplit(url)
        port = parts.port
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise UserError(f"--listen {url}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise UserError(f"--listen {url}: scheme must be netflow://, sflow://, flow://, udp://"
                        " or tcp://")
    if port is None:
        raise UserError(f"--listen {url}: expected {parts.scheme}://HOST:PORT")
    if parts.path not in ("", "/") or parts.fragment or set(query) - {"count"}:
        raise UserError(f"--listen {url}: unexpected path or query after the port "
                        "(only ?count=N)")
    count = 1
    if "count" in query:
        text = query["count"][-1]
        if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
            raise UserError(f"--listen {url}: count must be a number from 1 to {MAX_COUNT}")
        count = int(text)
    transport, accept = SCHEMES[parts.scheme]
    # goflow2's ``sflow://:6343``: no host is every IPv4 address
    return Endpoint(transport, parts.hostname or "0.0.0.0", port, count, accept, parts.scheme)
