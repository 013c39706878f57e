"""Recorded export streams for the collector bench: flowprobe's own IPFIX, v9 and v5 of a trace,
and what pmacctd's ``sfprobe`` plugin, an sFlow agent, sends for it.

``record(trace, version, path)`` runs ``flowprobe replay TRACE --export udp://127.0.0.1:P``
into a socket with a large buffer and keeps every datagram in a file (a 4-octet length before
each), so every collector in the bench is sent the same bytes; ``record_sflow`` does the same
with pmacctd sampling the trace (``sfprobe``). ``load`` reads one back; ``records_in`` counts
the flow records a stream carries (what a collector must decode).
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOWPROBE = ROOT / ".venv" / "bin" / "flowprobe"
_LEN = struct.Struct(">I")
SFLOW = "sflow"  # the stream name beside the export versions 10, 9, 5


class Sink:
    """A UDP socket on 127.0.0.1 with a large buffer and a thread that keeps every datagram,
    noting when the last one came (so a caller can wait for a sender to fall quiet)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, 256 << 20)
                break
            except OSError:
                continue
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.datagrams: list[bytes] = []
        self.last = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                self.datagrams.append(self.sock.recv(65535))
                self.last = time.monotonic()
            except TimeoutError:  # nothing for 0.2 s: the socket is empty
                if self._done.is_set():
                    return

    def wait_quiet(self, quiet_s: float, deadline: float) -> None:
        """Until nothing has come for ``quiet_s`` seconds (at most until ``deadline``)."""
        while time.monotonic() - self.last < quiet_s and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> list[bytes]:
        """Every datagram, once the socket is empty."""
        self._done.set()
        self._thread.join()
        self.sock.close()
        return self.datagrams


def _save(path: Path, datagrams: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(_LEN.pack(len(d)) + d for d in datagrams))


def record(trace: Path, version: int, path: Path, timeout: float = 900.0) -> list[bytes]:
    """Export ``trace`` as ``version`` (10, 9, 5) over UDP and store the datagrams."""
    sink = Sink()
    try:
        # Paced as replay paces (on by default where the sender knows no better): nothing lost.
        subprocess.run([str(FLOWPROBE), "replay", str(trace), "--export",
                        f"udp://127.0.0.1:{sink.port}", "--version", str(version), "-q"],
                       check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    finally:
        got = sink.close()
    _save(path, got)
    return got


def sfprobe(trace: Path, rate: int, workdir: Path, timeout: float = 900.0,
            quiet_s: float = 1.0) -> list[bytes]:
    """Every datagram pmacctd's ``sfprobe`` plugin sends for ``trace``, sampling 1 in ``rate``.

    pmacctd's core reads the file and hands the packets to the plugin through a pipe; when the
    file ends it shuts the plugin down, and the plugin drops whatever it had not read yet. On a
    loaded machine that was most of a trace (with the plugin stopped for 3 s: not a datagram).
    So the core is told to wait at the end of the file (``pcap_savefile_wait``), and it is
    stopped only once it has read the whole file and the plugin has sent nothing for
    ``quiet_s`` while asleep (waiting for packets, not runnable or stopped: a starved plugin
    is as quiet as a finished one); it sends its last, partly filled datagram as it stops.
    """
    sink = Sink()
    conf, log = workdir / "sfprobe.conf", workdir / "sfprobe.log"
    conf.write_text(
        "daemonize: false\n"
        f"pcap_savefile: {trace}\npcap_savefile_wait: true\n"
        "plugins: sfprobe\n"
        f"sfprobe_receiver: 127.0.0.1:{sink.port}\n"
        "sfprobe_agentip: 192.0.2.1\n"
        f"sampling_rate: {rate}\n")
    deadline = time.monotonic() + timeout
    with open(log, "wb") as logf:
        proc = subprocess.Popen(["pmacctd", "-f", str(conf)], stdout=logf,
                                stderr=subprocess.STDOUT)
    try:
        while b"finished reading PCAP capture file" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pmacctd did not finish reading "
                                   f"{trace}: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.05)
        while time.monotonic() < deadline:
            sink.wait_quiet(quiet_s, deadline)
            if _asleep(proc.pid) and time.monotonic() - sink.last >= quiet_s:
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        got = sink.close()
    return got


def _asleep(pid: int) -> bool:
    """Whether the children of ``pid`` (pmacctd's plugins) all sleep, waiting for work."""
    try:
        kids = [int(k) for t in Path(f"/proc/{pid}/task").iterdir()
                for k in (t / "children").read_text().split()]
        states = [Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0]
                  for k in kids]
    except (OSError, ValueError):
        return False
    return bool(states) and all(s == "S" for s in states)


def record_sflow(trace: Path, rate: int, path: Path, timeout: float = 900.0) -> list[bytes]:
    """``sfprobe`` for ``trace``, stored like ``record``'s streams."""
    with tempfile.TemporaryDirectory(prefix="sfprobe-") as work:
        got = sfprobe(trace, rate, Path(work), timeout)
    _save(path, got)
    return got


def load(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


@dataclass(frozen=True)
class Counts:
    """What a stream carries, counted by the bundled decoder: flow records (sFlow flow
    samples), the sum of their packet counters, and the lines ``flowprobe collect`` writes
    for it (sFlow counter samples are records of their own)."""

    records: int
    packets: int
    lines: int


def records_in(datagrams: list[bytes]) -> Counts:
    from probe.collect import Decoder

    d = Decoder()
    for i, m in enumerate(datagrams):
        d.feed(m, "127.0.0.1", ("udp", "127.0.0.1", 1, 1), accept="flow")
        if i % 512 == 511:
            d.flush()
    d.flush()
    st = d.stats
    return Counts(st.records, st.flow_packets, st.records + st.sflow["counter_samples"])


def sequence_steps(datagrams: list[bytes]) -> dict[int, int]:
    """The sequence number each domain's next message would carry after the stream (IPFIX:
    data records, options records included; NetFlow v9: messages; v5: flows; sFlow:
    datagrams), by domain (IPFIX observation domain, v9 source id, v5 engine type and id,
    sFlow sub-agent), as the bundled decoder expects it."""
    from probe.collect import Decoder

    d = Decoder()
    for m in datagrams:
        d.feed(m, "127.0.0.1", ("udp", "127.0.0.1", 1, 1), accept="flow")
    d.flush()
    steps: dict[int, int] = {}
    for session in d.table.sessions.values():
        for domain, ds in session.domains.items():
            steps[domain] = ds.sequence or 0
    for (_agent, sub_agent), ds in d.sflow.agents.items():
        steps[sub_agent] = ds.sequence or 0
    return steps
