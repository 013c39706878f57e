"""`make bench`'s collector table: the same recorded export stream, sent at rising rates, into
``flowprobe collect`` (1 and 2 workers), ``nfcapd`` and pmacct's ``nfacctd``.

    python -m tools.bench_collect [--size 1M] [--versions 10,9,5] [--rates 100k,250k,...]

The stream is flowprobe's own export of the bench's generated trace (``tools/streams.py``),
recorded once per version. It is sent by ``EXPORTERS`` exporters (one UDP socket each, each a
whole copy of the stream, interleaved), so the kernel can spread them over a collector's
SO_REUSEPORT sockets, paced to the rate in records per second. A collector keeps up with a
rate when it lost nothing (no datagram dropped at its sockets, every record counted) and is
idle within 1 s of the last message (its socket queues empty, so a big buffer cannot hide a
backlog). CPU per 100k records is the CPU time of the collector's processes (user + system,
from /proc, children included) between the first and the last message plus that second,
divided by the records sent. Each system gets a 128 MB socket buffer.

flowprobe writes JSON lines to a file (``--output``); nfcapd its binary files; nfacctd its
``print`` plugin to a CSV file. sFlow: ``STREAMS`` maps a version to how it is recorded; an
sFlow stream (``"sflow"``) joins when the collector decodes it (``flowprobe collect --listen
sflow://``, and sfacctd as its peer).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tools import streams
from tools.bench import OUT, get_trace, parse_size, size_label

ROOT = Path(__file__).resolve().parent.parent
FLOWPROBE = ROOT / ".venv" / "bin" / "flowprobe"
BUFFER = 128 << 20
EXPORTERS = 4
IDLE_S = 1.0
DEFAULT_RATES = "100k,250k,500k,1M,2M"
NAMES = {10: "IPFIX", 9: "NetFlow v9", 5: "NetFlow v5"}


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


def _udp_queue_and_drops(port: int) -> tuple[int, int]:
    hexport = f":{port:04X}"
    queued = drops = 0
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(path).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[1].endswith(hexport):
                queued += int(cols[4].split(":")[1], 16)
                drops += int(cols[12])
    return queued, drops


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    system: str
    version: int
    rate: int
    sent: int
    decoded: int
    drops: int
    idle: bool
    cpu: float

    @property
    def kept_up(self) -> bool:
        return self.drops == 0 and self.idle and self.decoded >= self.sent


class Collector:
    name = ""

    def __init__(self, workdir: Path, port: int) -> None:
        self.dir = Path(tempfile.mkdtemp(dir=workdir))
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.sent_records = self.sent_packets = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.log = open(self.dir / "log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + 20
        while not _udp_bound(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} did not start: {self.log_text()}")
            time.sleep(0.05)
        time.sleep(0.3)

    def log_text(self) -> str:
        return (self.dir / "log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def decoded(self) -> int:
        raise NotImplementedError


def _udp_bound(port: int) -> bool:
    hexport = f":{port:04X}"
    return any(line.split()[1].endswith(hexport) for path in ("/proc/net/udp", "/proc/net/udp6")
               for line in Path(path).read_text().splitlines()[1:])


class Flowprobe(Collector):
    def __init__(self, workdir: Path, port: int, workers: int) -> None:
        super().__init__(workdir, port)
        self.workers = workers
        self.name = f"flowprobe collect ({workers} worker{'s' if workers > 1 else ''})"

    def command(self) -> list[str]:
        count = f"?count={self.workers}" if self.workers > 1 else ""
        return [str(FLOWPROBE), "collect", "--listen", f"udp://127.0.0.1:{self.port}{count}",
                "--output", str(self.dir / "flows.json"), "--buffer-size", str(BUFFER)]

    def decoded(self) -> int:
        with (self.dir / "flows.json").open("rb") as f:
            return sum(1 for _ in f)


class Nfcapd(Collector):
    name = "nfcapd"

    def command(self) -> list[str]:
        return ["nfcapd", "-w", str(self.dir), "-b", "127.0.0.1", "-p", str(self.port),
                "-B", str(BUFFER), "-t", "3600"]

    def decoded(self) -> int:
        files = sorted(p for p in self.dir.glob("nfcapd.*") if p.name[7:8].isdigit())
        n = 0
        for f in files:
            out = subprocess.run(["nfdump", "-r", str(f), "-q", "-o", "fmt:%pr", "-N"],
                                 capture_output=True, text=True, check=False).stdout
            n += sum(1 for line in out.splitlines() if line.strip())
        return n


class Nfacctd(Collector):
    name = "nfacctd"

    def command(self) -> list[str]:
        conf = self.dir / "nfacctd.conf"
        conf.write_text(
            f"nfacctd_ip: 127.0.0.1\nnfacctd_port: {self.port}\n"
            f"nfacctd_pipe_size: {BUFFER}\n"
            "plugins: print\nprint_output: csv\n"
            f"print_output_file: {self.dir}/flows.csv\nprint_output_file_append: true\n"
            "print_refresh_time: 1\n"
            # every record its own line: the primitives that tell flows apart, and the time
            "aggregate: src_host,dst_host,src_port,dst_port,proto,timestamp_start,"
            "timestamp_end,peer_src_ip\n")
        return ["nfacctd", "-f", str(conf)]

    def decoded(self) -> int:
        """nfacctd's print plugin aggregates records with equal primitives, so its records
        cannot be counted: its packets can. Records 'decoded' = all when every packet the
        stream carries is in its output, else the share of packets it has."""
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


def send(datagrams: list[bytes], records_per_msg: float, rate: int, port: int) -> float:
    """Each of EXPORTERS sockets sends the whole stream, interleaved, at ``rate`` records/s in
    all; returns when the last message left."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(EXPORTERS)]
    msgs_per_s = rate / records_per_msg
    t0 = time.perf_counter()
    k = 0
    step = max(1, int(msgs_per_s / 2000))  # check the clock every ~0.5 ms of sending
    dest = ("127.0.0.1", port)
    for m in datagrams:
        for s in socks:
            s.sendto(m, dest)
            k += 1
            if k % step == 0:
                ahead = k / msgs_per_s - (time.perf_counter() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    for s in socks:
        s.close()
    return time.perf_counter()


def run_one(c: Collector, datagrams: list[bytes], records: int, packets: int, version: int,
            rate: int) -> Result:
    c.sent_records, c.sent_packets = records * EXPORTERS, packets * EXPORTERS
    c.start()
    assert c.proc is not None
    try:
        cpu0 = _cpu_of_tree(c.proc.pid)
        last = send(datagrams, records / len(datagrams), rate, c.port)
        time.sleep(max(0.0, last + IDLE_S - time.perf_counter()))
        queued, drops = _udp_queue_and_drops(c.port)
        cpu = _cpu_of_tree(c.proc.pid) - cpu0
        idle = queued == 0
    finally:
        c.stop()
    time.sleep(0.5)
    return Result(c.name, version, rate, records * EXPORTERS, c.decoded(), drops, idle, cpu)


def table(results: list[Result]) -> str:
    rows = [("stream", "collector", "highest rate kept up", "CPU s / 100k records")]
    keys: dict[tuple[int, str], list[Result]] = {}
    for r in results:
        keys.setdefault((r.version, r.system), []).append(r)
    for (version, system), rs in keys.items():
        ok = [r for r in rs if r.kept_up]
        best = max(ok, key=lambda r: r.rate) if ok else None
        lowest = size_label(min(r.rate for r in rs))
        rate = f"{size_label(best.rate)} rec/s" if best else f"< {lowest}"
        at = best or min(rs, key=lambda r: r.rate)
        rows.append((NAMES[version], system, rate, f"{at.cpu / at.sent * 1e5:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True))
                     for r in rows)


def make_collector(system: str, work: Path, port: int) -> Collector:
    if system.startswith("flowprobe"):
        return Flowprobe(work, port, int(system[-1]))
    return Nfcapd(work, port) if system == "nfcapd" else Nfacctd(work, port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=1_000_000, help="trace packets")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--versions", default="10,9,5")
    ap.add_argument("--rates", default=DEFAULT_RATES, help="records/s, rising")
    ap.add_argument("--systems", default="flowprobe1,flowprobe2,nfcapd,nfacctd")
    ap.add_argument("--trace-dir", type=Path, default=OUT / "traces")
    args = ap.parse_args(argv)
    trace = get_trace(args.size, args.seed, args.trace_dir)
    rates = [parse_size(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    results: list[Result] = []
    try:
        for version in (int(v) for v in args.versions.split(",")):
            path = args.trace_dir / f"{trace.path.stem}-v{version}.stream"
            datagrams = streams.load(path) if path.exists() else \
                streams.record(trace.path, version, path)
            records, packets = streams.records_in(datagrams, packets=True)
            print(f"{NAMES[version]}: {len(datagrams)} messages, {records} records x "
                  f"{EXPORTERS} exporters", file=sys.stderr)
            for system in args.systems.split(","):
                for rate in rates:
                    if system.startswith("nf") and shutil.which(system) is None:
                        break
                    c = make_collector(system, work, _free_port())
                    r = run_one(c, datagrams, records, packets, version, rate)
                    results.append(r)
                    print(f"  {r.system:32s} {size_label(rate):>5s} rec/s: decoded "
                          f"{r.decoded}/{r.sent}, drops {r.drops}, idle {r.idle}, "
                          f"CPU {r.cpu:.2f} s", file=sys.stderr)
                    if not r.kept_up:
                        break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
