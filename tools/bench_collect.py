"""`make bench`'s collector table: recorded export streams, sent at rising rates, into
``flowprobe collect`` (1 and 2 workers) and the C collectors beside it.

    python -m tools.bench_collect [--size 1M] [--streams ipfix,v9,v5,sflow]
                                  [--rates 50k,100k,...] [--refine 2] [--systems ...]

The streams are of the bench's generated trace (``tools/streams.py``), recorded once each
and cached beside it: flowprobe's own IPFIX, NetFlow v9 and v5 export, and the sFlow that
pmacctd's ``sfprobe`` plugin (a real agent: raw packet headers of 128 octets, 1 in
``SFLOW_RATE`` packets, and its counter samples) sends for it. NetFlow streams go to
``flowprobe collect --listen udp://``, ``nfcapd`` and pmacct's ``nfacctd``; the sFlow stream
to ``flowprobe collect --listen sflow://`` and pmacct's ``sfacctd``.

A stream is sent by ``EXPORTERS`` exporters (one UDP socket each, their messages interleaved;
each sFlow exporter with an agent address of its own), so the kernel can spread them over a
collector's SO_REUSEPORT sockets, paced to the rate in records per second, and repeated (its
sequence numbers moved on) until the send lasts ``RUN_S`` seconds. A collector keeps up with a
rate when it lost nothing (no datagram dropped at its sockets, every record counted) and is
idle within 1 s of the last message (its socket queues empty, so a big buffer cannot hide a
backlog): a collector slower than 5/6 of the rate cannot pass. The rates rise until one is
missed; then ``--refine`` geometric midpoints between the last rate kept up and the first
missed narrow it (a first rate already missed is followed by lower ones). The rate a row
shows is what the sender reached (in Python, it tops out near 2M IPFIX records/s). CPU per
100k records is the CPU time of the collector's processes (user + system, from /proc,
children included) from the first message to 1 s after the last, divided by the records sent.

Each system is given a 128 MB socket buffer; what the kernel grants is in the results file
(pmacct and nfcapd ask with SO_RCVBUF, which net.core.rmem_max caps; flowprobe forces it as
root). pmacct's pipe to its print plugin is raised from its defaults, as its own warnings
ask. flowprobe writes JSON lines to a file (``--output``); nfcapd its binary files; nfacctd
and sfacctd their ``print`` plugin's CSV, refreshed every second (every record its own line,
by its timestamps). The table goes to stdout, every run to ``bench/out/bench-collect-*.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools import streams
from tools.bench import OUT, environment, get_trace, parse_size, size_label

ROOT = Path(__file__).resolve().parent.parent
FLOWPROBE = ROOT / ".venv" / "bin" / "flowprobe"
BUFFER = 128 << 20
EXPORTERS = 8
IDLE_S = 1.0
RUN_S = 5.0  # each run sends for at least this long: the 1-s grace is a fifth of it
SFLOW_RATE = 16  # pmacctd's sampling, 1 in N: ~61k samples of the 1M trace, as many as flows
DEFAULT_RATES = "50k,100k,250k,500k,1M,2M"
PMACCT_PIPE, PMACCT_BUFFER = 256 << 20, 256 << 10  # core -> print plugin
FLOOR = 5_000  # lowest rate tried when even the first is missed
# stream -> (label, export version or "sflow")
STREAMS: dict[str, tuple[str, int | str]] = {
    "ipfix": ("IPFIX", 10), "v9": ("NetFlow v9", 9), "v5": ("NetFlow v5", 5),
    "sflow": ("sFlow", streams.SFLOW)}
SYSTEMS = {"netflow": ("flowprobe1", "flowprobe2", "nfcapd", "nfacctd"),
           "sflow": ("flowprobe1", "flowprobe2", "sfacctd")}


def _cpu_of_tree(pid: int) -> float:
    """User + system seconds of ``pid`` and every live descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for t in Path(f"/proc/{p}/task").iterdir():
                kids = (t / "children").read_text().split()
                todo.extend(int(k) for k in kids)
        except (OSError, IndexError, ValueError):
            continue
    return total


def _udp_sockets(port: int) -> list[list[str]]:
    """The /proc/net/udp{,6} rows of the sockets bound to ``port``."""
    hexport = f":{port:04X}"
    return [cols for path in ("/proc/net/udp", "/proc/net/udp6")
            for line in Path(path).read_text().splitlines()[1:]
            if (cols := line.split())[1].endswith(hexport)]


def _udp_queue_and_drops(port: int) -> tuple[int, int]:
    rows = _udp_sockets(port)
    return (sum(int(c[4].split(":")[1], 16) for c in rows), sum(int(c[12]) for c in rows))


def _rcvbuf_granted(port: int) -> int | None:
    """The receive buffer the kernel granted the first socket on ``port`` (``ss -m``'s
    ``rb``: twice what SO_RCVBUF was set to, as the kernel counts its overhead)."""
    try:
        out = subprocess.run(["ss", "-u", "-a", "-n", "-m", f"sport = :{port}"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for part in out.replace(",", " ").replace("(", " ").replace(")", " ").split():
        if part.startswith("rb") and part[2:].isdigit():
            return int(part[2:])
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    system: str
    stream: str
    rate: int  # records/s asked for
    achieved: float  # records/s the sender reached
    sent: int
    decoded: int
    drops: int
    idle: bool
    cpu: float
    rcvbuf: int | None = None

    @property
    def kept_up(self) -> bool:
        return self.drops == 0 and self.idle and self.decoded >= self.sent

    def why(self) -> str:
        out = []
        if self.drops:
            out.append(f"{self.drops} datagrams dropped")
        if not self.idle:
            out.append("backlog after 1 s")
        if self.decoded < self.sent:
            out.append(f"{self.sent - self.decoded} records missing")
        return ", ".join(out)


@dataclass
class Collector:
    workdir: Path
    port: int
    sent_records: int = 0
    sent_packets: int = 0
    dir: Path = field(init=False)
    proc: subprocess.Popen | None = field(init=False, default=None)
    name = ""

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(dir=self.workdir))

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.log = open(self.dir / "log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + 20
        while not _udp_sockets(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} did not start: {self.log_text()}")
            time.sleep(0.05)
        time.sleep(0.3)

    def log_text(self) -> str:
        return (self.dir / "log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM if isinstance(self, Flowprobe | Nfcapd)
                              else signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def decoded(self) -> int:
        raise NotImplementedError


@dataclass
class Flowprobe(Collector):
    workers: int = 1
    scheme: str = "udp"
    lines: int = 0  # lines a whole stream makes (sFlow counter samples are lines too)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.name = f"flowprobe collect ({self.workers} worker{'s' * (self.workers > 1)})"

    def command(self) -> list[str]:
        count = f"?count={self.workers}" if self.workers > 1 else ""
        return [str(FLOWPROBE), "collect", "--listen",
                f"{self.scheme}://127.0.0.1:{self.port}{count}",
                "--output", str(self.dir / "flows.json"), "--buffer-size", str(BUFFER)]

    def decoded(self) -> int:
        out = subprocess.run(["wc", "-l", str(self.dir / "flows.json")], capture_output=True,
                             text=True, check=True).stdout
        return int(out.split()[0]) - (self.lines - self.sent_records)  # flow records


@dataclass
class Nfcapd(Collector):
    name = "nfcapd"

    def command(self) -> list[str]:
        return ["nfcapd", "-w", str(self.dir), "-b", "127.0.0.1", "-p", str(self.port),
                "-B", str(BUFFER), "-t", "3600"]

    def decoded(self) -> int:
        """The flows nfcapd's files hold (``nfdump -I``: each file's statistics record)."""
        files = sorted(p for p in self.dir.glob("nfcapd.*") if p.name[7:8].isdigit())
        n = 0
        for f in files:
            out = subprocess.run(["nfdump", "-I", "-r", str(f)], capture_output=True,
                                 text=True, check=False).stdout
            n += sum(int(line.split(":")[1]) for line in out.splitlines()
                     if line.startswith("Flows:"))
        return n


@dataclass
class Pmacct(Collector):
    """nfacctd or sfacctd: the print plugin writes a CSV every second."""

    daemon: str = "nfacctd"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.name = self.daemon

    def command(self) -> list[str]:
        conf = self.dir / f"{self.daemon}.conf"
        # every record its own line: the primitives that tell flows apart, and the time
        # (NetFlow: the flow's start and end; sFlow: each sample's arrival)
        times = "timestamp_start,timestamp_end" if self.daemon == "nfacctd" else \
            "timestamp_arrival"
        conf.write_text(
            f"{self.daemon}_ip: 127.0.0.1\n{self.daemon}_port: {self.port}\n"
            f"{self.daemon}_pipe_size: {BUFFER}\n"
            # pmacct's defaults (a 4 MB pipe of 536-octet buffers to the plugin) lose records
            # from 250k/s on ("Missing data detected ... Increase values"): raised as it asks
            f"plugin_pipe_size: {PMACCT_PIPE}\nplugin_buffer_size: {PMACCT_BUFFER}\n"
            "plugins: print\nprint_output: csv\n"
            f"print_output_file: {self.dir}/flows.csv\nprint_output_file_append: true\n"
            "print_refresh_time: 1\n"
            f"aggregate: src_host,dst_host,src_port,dst_port,proto,{times},peer_src_ip\n")
        return [self.daemon, "-f", str(conf)]

    def decoded(self) -> int:
        """The print plugin aggregates records with equal primitives, so its records cannot
        be counted: its packets can. Records 'decoded' = all when every packet the stream
        carries is in its output, else the share of packets it has."""
        path = self.dir / "flows.csv"
        if not path.exists():
            return 0
        packets = 0
        with path.open() as f:
            head = f.readline().strip().split(",")
            col = head.index("PACKETS")
            for line in f:
                parts = line.rstrip("\n").split(",")
                if len(parts) == len(head) and parts[col].isdigit():
                    packets += int(parts[col])
        return round(self.sent_records * packets / max(1, self.sent_packets))


# version -> (offset of the header's sequence number, the domain it counts in, as
# ``streams.sequence_steps`` keys it: IPFIX domain, v9 source id, v5 engine, sFlow sub-agent)
_SEQUENCE = {
    10: (8, lambda d: struct.unpack_from(">I", d, 12)[0]),
    9: (12, lambda d: struct.unpack_from(">I", d, 16)[0]),
    5: (16, lambda d: d[20] << 8 | d[21]),
    streams.SFLOW: (16, lambda d: struct.unpack_from(">I", d, 12)[0]),
}


class Sender:
    """Sends a stream as EXPORTERS exporters would, each from a socket of its own, the
    exporters' messages interleaved, each exporter's copy repeated ``passes`` times.

    A repeated copy continues where the last pass ended: its sequence numbers are moved on by
    what one pass carries (IPFIX records, NetFlow v9 messages, v5 records, sFlow datagrams),
    so a collector sees one longer stream, not a restart. Each sFlow exporter has an agent
    address of its own (192.0.2.1, .2, ...), as separate switches would.
    """

    def __init__(self, datagrams: list[bytes], version: int | str, counts: streams.Counts
                 ) -> None:
        self.datagrams = [bytearray(d) for d in datagrams]
        self.counts = counts
        self.sflow = version == streams.SFLOW
        if self.sflow:  # pmacctd's agent address is IPv4
            assert all(d[4:8] == b"\0\0\0\1" for d in self.datagrams)
        # where the sequence number is, where the domain it counts in, and how it is read
        self.seq_at, domain = _SEQUENCE[version]
        self.base = [struct.unpack_from(">I", d, self.seq_at)[0] for d in self.datagrams]
        keys = [domain(d) for d in self.datagrams]
        first: dict[int, int] = {}
        for k, base in zip(keys, self.base, strict=True):
            first.setdefault(k, base)
        after = streams.sequence_steps(datagrams)  # what each domain's next message carries
        self.step = [after[k] - first[k] for k in keys]  # what one pass moves it on

    def passes(self, rate: int) -> int:
        """Passes for a send of at least RUN_S seconds at ``rate``."""
        return max(1, math.ceil(rate * RUN_S / (self.counts.records * EXPORTERS)))

    def send(self, rate: int, port: int, passes: int) -> tuple[float, float]:
        """Every exporter's copy, ``passes`` times, at ``rate`` records/s in all; returns when
        the first and the last message left."""
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(EXPORTERS)]
        agents = [bytes([192, 0, 2, 1 + k]) for k in range(EXPORTERS)]
        msgs_per_s = rate * len(self.datagrams) / self.counts.records
        dest = ("127.0.0.1", port)
        step = max(1, int(msgs_per_s / 2000))  # check the clock every ~0.5 ms of sending
        pack = struct.pack_into
        t0 = time.perf_counter()
        k = 0
        for p in range(passes):
            for d, base, move in zip(self.datagrams, self.base, self.step, strict=True):
                pack(">I", d, self.seq_at, (base + p * move) & 0xFFFFFFFF)
                for sock, agent in zip(socks, agents, strict=True):
                    if self.sflow:
                        d[8:12] = agent
                    sock.sendto(d, dest)
                    k += 1
                    if k % step == 0:
                        ahead = k / msgs_per_s - (time.perf_counter() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
        last = time.perf_counter()
        for sock in socks:
            sock.close()
        return t0, last


def run_one(c: Collector, sender: Sender, stream: str, rate: int) -> Result:
    passes = sender.passes(rate)
    copies = passes * EXPORTERS
    c.sent_records = sender.counts.records * copies
    c.sent_packets = sender.counts.packets * copies
    if isinstance(c, Flowprobe):
        c.lines = sender.counts.lines * copies
    c.start()
    assert c.proc is not None
    rcvbuf = _rcvbuf_granted(c.port)
    try:
        cpu0 = _cpu_of_tree(c.proc.pid)
        first, last = sender.send(rate, c.port, passes)
        time.sleep(max(0.0, last + IDLE_S - time.perf_counter()))
        queued, drops = _udp_queue_and_drops(c.port)
        cpu = _cpu_of_tree(c.proc.pid) - cpu0
    finally:
        c.stop()
    time.sleep(0.5)
    achieved = c.sent_records / max(last - first, 1e-6)
    decoded = c.decoded()
    shutil.rmtree(c.dir, ignore_errors=True)  # a run's output can be gigabytes
    return Result(c.name, stream, rate, achieved, c.sent_records, decoded, drops,
                  queued == 0, cpu, rcvbuf)


def make_collector(system: str, work: Path, port: int, sflow: bool) -> Collector:
    if system.startswith("flowprobe"):
        return Flowprobe(work, port, workers=int(system[-1]), scheme="sflow" if sflow else "udp")
    if system == "nfcapd":
        return Nfcapd(work, port)
    return Pmacct(work, port, daemon=system)


class Search:
    """The rates one stream and collector are tried at: up the list until one is missed,
    then ``refine`` geometric midpoints between the last kept up and the first missed (and
    first lower rates, a quarter each time, when the first of the list is missed)."""

    def __init__(self, rates: list[int], refine: int) -> None:
        self.rates, self.refine = sorted(rates), refine
        self.tried: dict[int, bool] = {}
        self.mids = 0

    def next(self) -> int | None:
        missed = [r for r, ok in self.tried.items() if not ok]
        if not missed:
            rest = [r for r in self.rates if r not in self.tried]
            return rest[0] if rest else None
        hi = min(missed)
        kept = [r for r, ok in self.tried.items() if ok and r < hi]
        if not kept:
            lower = int(round(hi / 4, -3))
            return lower if lower >= FLOOR else None
        lo = max(kept)
        if self.mids >= self.refine or hi < 1.15 * lo:
            return None
        self.mids += 1
        return int(round(math.sqrt(lo * hi), -3))


def table(results: list[Result]) -> str:
    rows = [("stream", "collector", "highest rate kept up", "CPU s / 100k records",
             "first rate missed")]
    keys: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        keys.setdefault((r.stream, r.system), []).append(r)
    for (stream, system), rs in keys.items():
        ok = [r for r in rs if r.kept_up]
        best = max(ok, key=lambda r: r.rate) if ok else None
        missed = min((r for r in rs if not r.kept_up), key=lambda r: r.rate, default=None)
        if best is None:
            rate = f"< {size_label(min(r.rate for r in rs))} rec/s"
        else:
            rate = f"{_label(best.achieved)} rec/s"
            if missed is None:
                rate = ">= " + rate + (" (sender)" if best.achieved < 0.9 * best.rate else "")
        at = best or min(rs, key=lambda r: r.rate)
        miss = "" if missed is None else \
            f"{_label(missed.achieved)} rec/s: {missed.why()}"
        rows.append((STREAMS[stream][0], system, rate, f"{at.cpu / at.sent * 1e5:.3f}", miss))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _label(rate: float) -> str:
    return f"{rate / 1e6:.2f}M" if rate >= 995_000 else f"{rate / 1e3:.0f}k"


def load_stream(trace: Path, stream: str, trace_dir: Path) -> list[bytes]:
    what = STREAMS[stream][1]
    name = f"v{what}" if isinstance(what, int) else f"sflow{SFLOW_RATE}"
    path = trace_dir / f"{trace.stem}-{name}.stream"
    if path.exists():
        return streams.load(path)
    if isinstance(what, int):
        return streams.record(trace, what, path)
    return streams.record_sflow(trace, SFLOW_RATE, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=1_000_000, help="trace packets")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--streams", default=",".join(STREAMS),
                    help=f"which streams ({', '.join(STREAMS)})")
    ap.add_argument("--rates", default=DEFAULT_RATES, help="records/s, rising")
    ap.add_argument("--refine", type=int, default=2,
                    help="midpoints tried between the last rate kept up and the first missed")
    ap.add_argument("--systems", default=None,
                    help="collectors (flowprobe1, flowprobe2, nfcapd, nfacctd, sfacctd); "
                         "default: all that take the stream")
    ap.add_argument("--trace-dir", type=Path, default=OUT / "traces")
    args = ap.parse_args(argv)
    trace = get_trace(args.size, args.seed, args.trace_dir)
    rates = [parse_size(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    results: list[Result] = []
    started = time.time()
    loads = [os.getloadavg()[0]]
    try:
        for stream in args.streams.split(","):
            sflow = STREAMS[stream][1] == streams.SFLOW
            datagrams = load_stream(trace.path, stream, args.trace_dir)
            counts = streams.records_in(datagrams)
            sender = Sender(datagrams, STREAMS[stream][1], counts)
            print(f"{STREAMS[stream][0]}: {len(datagrams)} messages, {counts.records} records "
                  f"x {EXPORTERS} exporters, repeated for {RUN_S:.0f} s", file=sys.stderr)
            wanted = SYSTEMS["sflow" if sflow else "netflow"]
            chosen = args.systems.split(",") if args.systems else wanted
            for system in (s for s in chosen if s in wanted):
                if not system.startswith("flowprobe") and shutil.which(system) is None:
                    continue
                search = Search(rates, args.refine)
                while (rate := search.next()) is not None:
                    c = make_collector(system, work, _free_port(), sflow)
                    r = run_one(c, sender, stream, rate)
                    loads.append(os.getloadavg()[0])
                    results.append(r)
                    search.tried[rate] = r.kept_up
                    print(f"  {r.system:32s} {size_label(rate):>5s} rec/s (sent at "
                          f"{_label(r.achieved)}): decoded {r.decoded}/{r.sent}, drops "
                          f"{r.drops}, idle {r.idle}, CPU {r.cpu:.2f} s, load "
                          f"{loads[-1]:.1f}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(results)
    minutes = (time.time() - started) / 60
    print(text)
    print(f"{len(results)} runs in {minutes:.1f} min; 1-min load average {min(loads):.1f} to "
          f"{max(loads):.1f}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"bench-collect-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"environment": environment(), "trace": str(trace.path),
                                "exporters": EXPORTERS, "sflow_rate": SFLOW_RATE,
                                "minutes": round(minutes, 1), "loadavg": loads,
                                "runs": [asdict(r) | {"kept_up": r.kept_up} for r in results],
                                "table": text}, indent=1))
    print(f"results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
