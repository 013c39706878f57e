"""Recorded export streams for the collector bench: flowprobe's own IPFIX, v9 and v5 of a trace.

``record(trace, version, path)`` runs ``flowprobe replay TRACE --export udp://127.0.0.1:P``
into a socket with a large buffer and keeps every datagram in a file (a 4-octet length before
each), so every collector in the bench is sent the same bytes. ``load`` reads one back;
``records_in`` counts the flow records a stream carries (what a collector must decode).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLOWPROBE = ROOT / ".venv" / "bin" / "flowprobe"
_LEN = struct.Struct(">I")


def record(trace: Path, version: int, path: Path, timeout: float = 900.0) -> list[bytes]:
    """Export ``trace`` as ``version`` (10, 9, 5) over UDP and store the datagrams."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 256 << 20)
            break
        except OSError:
            continue
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    got: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        while True:
            try:
                got.append(sock.recv(65535))
            except TimeoutError:
                if done.is_set():
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    port = sock.getsockname()[1]
    # Paced as replay paces (on by default where the sender knows no better): nothing lost.
    subprocess.run([str(FLOWPROBE), "replay", str(trace), "--export",
                    f"udp://127.0.0.1:{port}", "--version", str(version), "-q"],
                   check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    done.set()
    t.join()
    sock.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(_LEN.pack(len(d)) + d for d in got))
    return got


def load(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def records_in(datagrams: list[bytes], packets: bool = False) -> Any:
    """Flow records the stream carries, counted by the bundled decoder (with ``packets``:
    and the sum of their packet counters)."""
    from probe.collect import Decoder

    d = Decoder()
    for i, m in enumerate(datagrams):
        d.feed(m, "127.0.0.1", ("udp", "127.0.0.1", 1, 1))
        if i % 512 == 511:
            d.flush()
    d.flush()
    return (d.stats.records, d.stats.flow_packets) if packets else d.stats.records
