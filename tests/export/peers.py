"""Real peers for export tests: dumpcap/tshark as the reference decoder, nfcapd/nfdump as the
reference collector. Each helper starts its peer, waits until it is really listening, and
stops it cleanly, so tests neither race the peer's start nor lose its last file.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from tools.bench import udp_socket_state

ENV = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def udp_sink(port: int | None = None) -> Iterator[socket.socket]:
    """A bound UDP socket, so that sends to the port raise no ICMP port unreachable."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", port or 0))
    try:
        yield s
    finally:
        s.close()


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram already waiting in ``sock`` (a ``udp_sink``), without waiting for more."""
    sock.setblocking(False)
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(65535))
    return out


def _wait_for(proc: subprocess.Popen, stream: IO[bytes], marker: bytes) -> None:
    """Read the peer's output until it says it is ready (it prints ``marker``)."""
    seen = b""
    while True:
        line = stream.readline()
        seen += line
        if marker in line:
            return
        if not line:
            proc.kill()
            raise RuntimeError(f"{proc.args[0]} did not start: {seen!r}")


def rx_queue(port: int) -> int | None:
    """Bytes waiting in the 127.0.0.1:port UDP socket (None: no such socket)."""
    state = udp_socket_state(port)
    return None if state is None else state[0]


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``cond`` until it holds; a deadline, not a guess of how long a busy machine needs."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.005)


@contextlib.contextmanager
def dumpcap(path: Path, bpf: str) -> Iterator[Path]:
    """Capture on lo while the body runs; the file is complete when the block exits.

    Whether dumpcap really captures, and whether the body's last packet is already in the file,
    is proven by a sentinel: one datagram to a port of our own (added to ``bpf`` with "or"),
    sent after start and again before stop, waited for in the file. Readers of the capture see
    these two plain UDP datagrams on a port other than the one they decode.
    """
    with udp_sink() as sentinel:
        port = sentinel.getsockname()[1]
        proc = subprocess.Popen(["dumpcap", "-i", "lo", "-f", f"({bpf}) or (udp port {port})",
                                 "-w", str(path), "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        assert proc.stderr is not None
        try:
            _wait_for(proc, proc.stderr, b"Capturing on")
            _sentinel(sentinel, path, b"start")
            yield path
            _sentinel(sentinel, path, b"stop")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=10)


def _sentinel(sock: socket.socket, path: Path, what: bytes) -> None:
    """Send a unique datagram to ``sock`` until dumpcap has written it to ``path`` (resent
    every 0.2 s: right after "Capturing on" the filter may not be attached yet)."""
    mark = b"flowprobe-dumpcap-sentinel-" + what + os.urandom(8).hex().encode()
    sent = [0.0]

    def written() -> bool:
        if time.monotonic() - sent[0] > 0.2:
            sock.sendto(mark, sock.getsockname())
            sent[0] = time.monotonic()
        return path.exists() and mark in path.read_bytes()

    wait_until(written, f"dumpcap writing its {what.decode()} sentinel")


def tshark(*args: str) -> str:
    r = subprocess.run(["tshark", *args], capture_output=True, text=True, env=ENV, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"tshark {' '.join(args)}: {r.stderr}")
    return r.stdout


def tshark_expert(cap: Path, decode_as: str) -> str:
    """The expert info summary; empty of Warns/Errors when the export is clean."""
    return tshark("-r", str(cap), "-d", decode_as, "-q", "-z", "expert")


def expert_problems(expert: str, *, allow: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """Warn/Error lines of a ``-z expert`` summary, less the (protocol, summary) pairs allowed.

    A test that makes a collector vanish mid-stream expects the TCP layer to say so (the
    collector's kernel resets the connection when unread data is pending, depending on timing);
    that is not a defect of the IPFIX stream, which is what these tests judge.
    """
    problems: list[str] = []
    section = ""
    for line in expert.splitlines():
        head = line.split(" (")[0].strip()
        if head in ("Errors", "Warns", "Notes", "Chats", "Comments"):
            section = head
            continue
        cols = line.split(None, 3)
        if (section in ("Errors", "Warns") and len(cols) == 4 and cols[0].isdigit()
                and (cols[2], cols[3]) not in allow):
            problems.append(f"{section}: {line.strip()}")
    return problems


def tshark_json(cap: Path, decode_as: str) -> list[dict]:
    return json.loads(tshark("-r", str(cap), "-d", decode_as, "-T", "json") or "[]")


_RECVFROM = {"x86_64": "45", "aarch64": "207"}.get(platform.machine())


def _idle_in_recvfrom(pid: int) -> bool:
    """Is nfcapd's receiving (main) thread blocked in recvfrom, i.e. done with the datagram
    it read last? (Unknown architecture: assume so.)"""
    if _RECVFROM is None:
        return True
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == _RECVFROM
    except OSError:
        return True


@contextlib.contextmanager
def nfcapd(directory: Path, port: int, buffer: int | None = 67108864) -> Iterator[Path]:
    """nfcapd on 127.0.0.1:port writing into ``directory``; files are closed on exit.

    ``buffer``: its socket buffer (``-B``); None leaves the kernel's default (208 KB here),
    which a burst of datagrams overruns.

    nfcapd is stopped only once the kernel says its socket has no datagram left to read and its
    receiving thread is back in recvfrom: a SIGTERM while it handles the last datagram loses
    that datagram's records. nfcapd 1.7.1 sometimes misses a SIGTERM that comes right after its
    start, so the signal is repeated until it exits.
    """
    directory.mkdir(parents=True, exist_ok=True)
    size = ["-B", str(buffer)] if buffer else []
    proc = subprocess.Popen(["nfcapd", *size, "-w", str(directory), "-p", str(port),
                             "-b", "127.0.0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=ENV)
    assert proc.stdout is not None
    try:
        _wait_for(proc, proc.stdout, b"Startup")
        wait_until(lambda: rx_queue(port) is not None, f"nfcapd bound to port {port}")
        yield directory
        wait_until(lambda: not rx_queue(port) and _idle_in_recvfrom(proc.pid),
                   f"nfcapd reading its queue on port {port}")
    finally:
        for _ in range(20):
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=1)
                break
        else:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"nfcapd on port {port} ignored SIGTERM for 20 s")


def nfdump(directory: Path, *args: str) -> str:
    r = subprocess.run(["nfdump", "-R", str(directory), *args], capture_output=True, text=True,
                       env=ENV, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"nfdump {' '.join(args)}: {r.stderr}")
    return r.stdout


def nfdump_info(directory: Path) -> dict[str, int]:
    """``nfdump -I`` as a dict (Flows, Packets, Bytes, Sequence failures, ...)."""
    out = {}
    for line in nfdump(directory, "-I").splitlines():
        k, _, v = line.partition(":")
        with contextlib.suppress(ValueError):
            out[k.strip()] = int(v.strip())
    return out


def tshark_flows(cap: Path, decode_as: str) -> list[dict[str, str]]:
    """Every flow record tshark decodes: its fields flattened, plus its message's header
    fields under ``hdr.``. Options records are included (they have no cflow.srcaddr*)."""
    flows: list[dict[str, str]] = []

    def leaves(node: dict, out: dict[str, str]) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                leaves(v, out)
            elif isinstance(v, str):
                out[k] = v

    for pkt in tshark_json(cap, decode_as):
        cflows = pkt["_source"]["layers"].get("cflow")
        if cflows is None:  # dumpcap()'s sentinels, on a port not decoded as cflow
            continue
        for cf in cflows if isinstance(cflows, list) else [cflows]:
            hdr = {f"hdr.{k}": v for k, v in cf.items() if isinstance(v, str)}
            hdr.update({f"hdr.{k}": v for k, v in cf.get("cflow.timestamp_tree", {}).items()})
            for key, sub in cf.items():
                if not isinstance(sub, dict):
                    continue
                containers = [sub] if key.startswith("pdu") else \
                    [v for k, v in sub.items() if k.startswith("Flow") and isinstance(v, dict)]
                for c in containers:
                    rec = dict(hdr)
                    leaves(c, rec)
                    flows.append(rec)
    return flows


def nfdump_flows(directory: Path) -> list[dict]:
    """Every flow nfdump stored, from its JSON output (objects separated by commas)."""
    text = nfdump(directory, "-q", "-o", "json")
    dec = json.JSONDecoder()
    out = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,[]":
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)


class TcpCollector:
    """A minimal IPFIX-over-TCP collector that keeps each connection's byte stream.

    ``stop`` drains what the exporter already sent before closing (a collector shutting down
    cleanly), so the test can tell records lost by the exporter from records in flight.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.streams: list[bytearray] = []
        self._lsock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> TcpCollector:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(4)
        s.settimeout(0.05)
        self.port = s.getsockname()[1]
        self._lsock = s
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._lsock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._lsock.accept()
            except TimeoutError:
                continue
            buf = bytearray()
            self.streams.append(buf)
            conn.settimeout(0.05)
            idle = 0
            while True:
                try:
                    data = conn.recv(1 << 16)
                except TimeoutError:
                    if self._stop.is_set():
                        idle += 1
                        if idle > 4:  # drained: nothing more for 0.2 s
                            break
                    continue
                if not data:
                    break
                idle = 0
                buf += data
            conn.close()
        self._lsock.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
