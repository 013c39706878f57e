"""`make bench`: flowprobe against softflowd, same traces, same collector, one table.

    python -m tools.bench [--sizes 100k,1M,5M] [--runs 3] [--seed 1] [--keep]
    python -m tools.bench --live [--rates 20k,50k,100k,200k] [--seconds 10] [--workers N]

For each synthetic trace (``tools/tracegen.py``; generated once per seed, size and generator
version, then reused from ``--trace-dir``) it runs, ``--runs`` times each, alternating,

  (a) ``softflowd -r TRACE -v 10 -6 -d -c none -n 127.0.0.1:P``
  (b) ``flowprobe replay TRACE --export udp://127.0.0.1:P --version 10``
  (c) ``flowprobe replay TRACE -c CONFIG --export udp://127.0.0.1:P --version 10``
  (d) ``flowprobe run -c CONFIG``

where CONFIG is an offline config reading TRACE with the layout, cache size and timeouts (b)
uses, exporting IPFIX to 127.0.0.1:P (``run_config``). (c) and (d) load, validate and build the
same config file, so they differ only in the command's path; (b) builds its config in code.
(c) and (d) export to one port per trace, so each of their runs loads the same file, and are
timed after one untimed run: from the second load on, the validation comes from flowprobe's
validated-config cache (the bench's own directory), as for a service restarted with its
config. What the first load costs (yangson, pydantic) is printed under the table.
Each goes into a fresh ``nfcapd`` on a free loopback port, and the table reports the median wall
time, CPU time (user + sys of the exporter process, from ``wait4``), its peak RSS, packets per
second and the ratio to softflowd. Every run is checked against what the generator wrote:
per-5-tuple packet counts must be identical, and octets must be the IP total lengths for
flowprobe (RFC 7012 ``octetDeltaCount``) and the frame lengths minus the Ethernet/802.1Q header
for softflowd (it counts Ethernet padding). Loss is checked at the collector: the kernel's drop
counter on nfcapd's socket, and for flowprobe nfdump's IPFIX sequence failures (softflowd's
IPFIX sequence numbers are known to be wrong, so for it only the totals speak).

Memory per cached flow is a system's peak RSS minus its peak RSS on a one-packet trace, divided
by the most flows its cache holds at once under the default timeouts (the generator computes
that from the packets it wrote; capped by the cache size).

Then the hostile rows (``--hostile``, default all): traces where nearly every packet is a new
flow, each run with the same cache size for both systems (``softflowd -m N``; flowprobe with a
config of the default layout and ``maxFlows`` N):

  flood 1M       SYN flood from random spoofed sources, 60 s, cache 65536: full, evicting
  scan 1M        one host scanning a /20 on 1024 ports, 60 s, cache 65536: full, evicting
  concurrent 1M  500k long-lived one-way flows alive at once, 60 s, cache 1,000,000: memory
                 per cached flow (one-way, so one cache entry each for softflowd too, whose
                 entries are bidirectional)

with evictions per second (flows ended for lack of resources, each system's own count).

The table goes to stdout; the same numbers, every run, go to ``bench/out/bench-<time>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import platform
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools import tracegen

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
FLOWPROBE = ROOT / ".venv" / "bin" / "flowprobe"
NFCAPD_BUFFER = 67_108_864
RUN_TIMEOUT_S = 900
NICE: list[str] = []  # ["nice", "-n", "-10"] with --nice -10: exporter and nfcapd run ahead
Key = tuple[int, str, str, int, int]  # proto, src, dst, sport, dport (ICMP: type*256+code)


# -- traces -------------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad trace size {text!r} (e.g. 100k, 1M)") from None


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def generator_version() -> str:
    """Traces are cached under the generator's source hash, so a changed generator regenerates."""
    return hashlib.sha256(Path(tracegen.__file__).read_bytes()).hexdigest()[:10]


@dataclass
class Trace:
    path: Path
    summary: dict[str, Any]
    totals: np.ndarray
    gen_seconds: float | None  # None when reused from the cache


@dataclass(frozen=True)
class Case:
    """One row group of the table: a trace and the cache size both systems get."""

    label: str
    packets: int
    pattern: str = "normal"
    duration_s: float | None = None
    flow_packets: float | None = None
    max_flows: int | None = None  # None: each system's default

    @property
    def stem(self) -> str:
        if self.pattern == "normal":
            return f"trace-{size_label(self.packets)}"
        return (f"trace-{self.pattern}-{size_label(self.packets)}-d{self.duration_s:g}"
                f"-f{self.flow_packets or 0:g}")


HOSTILE = {
    "flood": Case("flood 1M", 1_000_000, "synflood", 60.0, max_flows=65536),
    "scan": Case("scan 1M", 1_000_000, "scan", 60.0, max_flows=65536),
    "concurrent": Case("concurrent 1M", 1_000_000, "concurrent", 60.0, flow_packets=2,
                       max_flows=1_000_000),  # 500k one-way flows: one entry each in both
}


def get_trace(packets: int, seed: int, trace_dir: Path, case: Case | None = None) -> Trace:
    case = case or Case(size_label(packets), packets)
    trace_dir.mkdir(parents=True, exist_ok=True)
    stem = trace_dir / f"{case.stem}-s{seed}-{generator_version()}"
    pcap, npz, meta = stem.with_suffix(".pcap"), stem.with_suffix(".npz"), stem.with_suffix(".json")
    if pcap.exists() and npz.exists() and meta.exists():
        summary = json.loads(meta.read_text())
        return Trace(pcap, summary, np.load(npz)["totals"], None)
    for stale in trace_dir.glob(f"{case.stem}-s{seed}-*"):
        stale.unlink()  # an older generator's trace of this size and seed: 100s of MB each
    t0 = time.perf_counter()
    summary = tracegen.generate(pcap, packets, seed, totals=True, pattern=case.pattern,
                                duration_s=case.duration_s, flow_packets=case.flow_packets)
    took = time.perf_counter() - t0
    totals = summary.pop("totals")
    summary["generate_seconds"] = round(took, 2)
    np.savez(npz, totals=totals)
    meta.write_text(json.dumps(summary, indent=1))
    return Trace(pcap, summary, totals, took)


def expected(totals: np.ndarray, octets: str) -> dict[Key, tuple[int, int]]:
    """The generator's per-5-tuple (packets, octets) keyed like ``nfdump_totals``."""
    out: dict[Key, tuple[int, int]] = {}
    for r in totals:
        n = 4 if r["ip_version"] == 4 else 16
        src = str(ipaddress.ip_address(bytes(r["src"][:n])))
        dst = str(ipaddress.ip_address(bytes(r["dst"][:n])))
        key = (int(r["proto"]), src, dst, int(r["sport"]), int(r["dport"]))
        out[key] = (int(r["packets"]), int(r[octets]))
    return out


# -- the collector ------------------------------------------------------------------------------

def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def udp_socket_state(port: int) -> tuple[int, int] | None:
    """(rx_queue bytes, drops) of the 127.0.0.1:port UDP socket, from /proc/net/udp."""
    want = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if f[1] == want:
            return int(f[4].split(":")[1], 16), int(f[-1])
    return None


def _proc_cpu_s(pid: int) -> float | None:
    """user + system CPU seconds of a running process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Collector:
    """A fresh nfcapd on a free loopback port, writing into its own directory."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nfcapd-", dir=workdir))
        self.port = port or free_udp_port()
        self.log = open(self.dir / "nfcapd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*NICE, "nfcapd", "-w", str(self.dir), "-b", "127.0.0.1", "-p", str(self.port),
             "-B", str(NFCAPD_BUFFER), "-t", "3600"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while udp_socket_state(self.port) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nfcapd did not start: {self._log_text()}")
            time.sleep(0.02)
        self.drops = 0
        self.cpu_s: float | None = None

    def _log_text(self) -> str:
        return (self.dir / "nfcapd.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """Wait until nfcapd has read everything queued, then let it flush its file."""
        quiet, deadline = 0, time.monotonic() + 60
        while quiet < 5 and time.monotonic() < deadline:
            state = udp_socket_state(self.port)
            if state is None:
                break
            self.drops = state[1]
            quiet = quiet + 1 if state[0] == 0 else 0
            time.sleep(0.05)
        self.cpu_s = _proc_cpu_s(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def files(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("nfcapd.*") if p.name[7:8].isdigit())

    def totals(self) -> dict[Key, tuple[int, int]]:
        out: dict[Key, tuple[int, int]] = {}
        for f in self.files():
            text = subprocess.run(
                ["nfdump", "-r", str(f), "-N", "-6", "-q",
                 "-o", "fmt:%pr|%sa|%da|%sp|%dp|%pkt|%byt"],
                check=True, capture_output=True, text=True).stdout
            for key, pkts, octs in parse_nfdump(text):
                p0, o0 = out.get(key, (0, 0))
                out[key] = (p0 + pkts, o0 + octs)
        return out

    def info(self) -> dict[str, int]:
        """nfdump -I's summary over every file: flows, packets, sequence failures."""
        sums: dict[str, int] = {}
        for f in self.files():
            text = subprocess.run(["nfdump", "-r", str(f), "-I"], check=True,
                                  capture_output=True, text=True).stdout
            for line in text.splitlines():
                name, _, value = line.partition(":")
                if name in ("Flows", "Packets", "Bytes", "Sequence failures"):
                    sums[name] = sums.get(name, 0) + int(value.strip())
        return sums

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _port(text: str) -> int:
    """nfdump prints ICMP type and code as ``T.C`` in the destination port."""
    t, _, c = text.strip().partition(".")
    return int(t) * 256 + int(c) if c else int(t)


def parse_nfdump(text: str) -> list[tuple[Key, int, int]]:
    rows = []
    for line in text.splitlines():
        f = line.split("|")
        if len(f) != 7:
            continue
        src = str(ipaddress.ip_address(f[1].strip()))
        dst = str(ipaddress.ip_address(f[2].strip()))
        key = (int(f[0]), src, dst, _port(f[3]), _port(f[4]))
        rows.append((key, int(f[5]), int(f[6])))
    return rows


def compare(got: dict[Key, tuple[int, int]], want: dict[Key, tuple[int, int]]) -> dict[str, Any]:
    """Per-5-tuple differences between what a collector got and what was generated."""
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    bad_pkts = [k for k in want if k in got and got[k][0] != want[k][0]]
    bad_octs = [k for k in want if k in got and got[k][1] != want[k][1]]
    return {
        "ok": not (missing or extra or bad_pkts or bad_octs),
        "flows_expected": len(want), "flows_got": len(got),
        "missing": len(missing), "extra": len(extra),
        "packet_mismatch": len(bad_pkts), "octet_mismatch": len(bad_octs),
        "packets_got": sum(v[0] for v in got.values()),
        "examples": [
            {"key": list(k), "got": list(got.get(k, (0, 0))), "want": list(want.get(k, (0, 0)))}
            for k in (missing + extra + bad_pkts + bad_octs)[:5]
        ],
    }


# -- running an exporter ------------------------------------------------------------------------

@dataclass
class Run:
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    maxrss_kb: int
    exit_code: int
    check: dict[str, Any] = field(default_factory=dict)
    collector: dict[str, Any] = field(default_factory=dict)
    loadavg_before: float | None = None  # 1-min load average: other work skews wall times
    # CPU time the rest of the machine used during the run (all CPUs' busy time minus the
    # exporter's and nfcapd's), and time the hypervisor took away (steal): what skews walls.
    others_cpu_s: float | None = None
    steal_s: float | None = None
    evictions: int | None = None  # flows the exporter ended because its cache was full


# Linux carries a process's peak RSS across exec (and a vfork child shares its parent's memory),
# so a child spawned straight from this process would report at least this process's RSS. A
# minimal interpreter (-S -I) spawns and reaps the exporter instead and hands back wall time and
# CPU (wait4: the exporter's own, microsecond resolution). Its own few MB would still be the
# floor of the peak RSS, so when GNU time is installed it goes in between and reports the
# exporter's peak RSS with a floor under 1 MB. Both floors are measured and reported.
_SPAWNER = """
import os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    f.write("%r %r %r %d %d" % (wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss,
                                os.waitstatus_to_exitcode(status)))
"""
GNU_TIME = "/usr/bin/time"


def measure(cmd: list[str], log: Path) -> Run:
    """Run ``cmd``; wall time, CPU and peak RSS are the exporter's own, not the tree's."""
    stats, rss_file = log.with_suffix(".rusage"), log.with_suffix(".maxrss")
    if Path(GNU_TIME).exists():
        cmd = [GNU_TIME, "-o", str(rss_file), "-f", "%M", *cmd]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*NICE, sys.executable, "-S", "-I", "-c", _SPAWNER, str(stats),
                                 *cmd],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Run(wall_s=float(RUN_TIMEOUT_S), cpu_s=0.0, user_s=0.0, sys_s=0.0,
                       maxrss_kb=0, exit_code=-9)
    if proc.returncode != 0 or not stats.exists():
        return Run(wall_s=0.0, cpu_s=0.0, user_s=0.0, sys_s=0.0, maxrss_kb=0,
                   exit_code=proc.returncode or 127)
    wall, user, sys_, rss, code = stats.read_text().split()
    if rss_file.exists():  # GNU time: the exporter's own peak, not the spawner's floor
        lines = rss_file.read_text().split()
        rss = lines[-1] if lines and lines[-1].isdigit() else rss
    return Run(wall_s=float(wall), cpu_s=float(user) + float(sys_), user_s=float(user),
               sys_s=float(sys_), maxrss_kb=int(rss), exit_code=int(code))


def rss_floor_kb(workdir: Path) -> int:
    """The lowest peak RSS ``measure`` can report (what the spawner itself occupies)."""
    return measure(["true"], workdir / "floor.log").maxrss_kb


def softflowd_cmd(trace: Path, port: int, max_flows: int | None = None) -> list[str]:
    cache = ["-m", str(max_flows)] if max_flows else []
    return ["softflowd", "-r", str(trace), "-v", "10", "-6", "-d", "-c", "none", *cache,
            "-n", f"127.0.0.1:{port}"]


def flowprobe_cmd(trace: Path, port: int, max_flows: int | None = None) -> list[str]:
    cache = ["-c", str(cache_config(max_flows))] if max_flows else []
    # Unpaced like softflowd: nfcapd has a 64 MB buffer here, and the meter is what is measured.
    return [str(FLOWPROBE), "replay", str(trace), *cache, "--export",
            f"udp://127.0.0.1:{port}", "--version", "10", "--rate", "0"]


def config_doc(max_flows: int | None = None, trace: Path | None = None,
               port: int | None = None) -> dict[str, Any]:
    """A config like ``replay``'s built-in one: the default layout and timeouts, and its cache
    size unless ``max_flows``. With ``trace`` its observation point reads that file; with
    ``port`` it exports IPFIX to 127.0.0.1:``port`` (``flowprobe run -c`` needs both;
    ``replay -c`` takes the file and ``--export`` from its command line)."""
    from probe.config.defaults import (
        DEFAULT_ACTIVE_TIMEOUT,
        DEFAULT_IDLE_TIMEOUT,
        DEFAULT_KEYS,
        DEFAULT_MAX_FLOWS,
        DEFAULT_NONKEYS,
    )

    fields = [{"name": f"Field {i}", "ieName": name}
              | ({"isFlowKey": [None]} if name in DEFAULT_KEYS else {})
              for i, name in enumerate(DEFAULT_KEYS + DEFAULT_NONKEYS, start=1)]
    cache: dict[str, Any] = {"name": "Flow cache", "timeoutCache": {
        "maxFlows": max_flows or DEFAULT_MAX_FLOWS, "activeTimeout": DEFAULT_ACTIVE_TIMEOUT,
        "idleTimeout": DEFAULT_IDLE_TIMEOUT, "cacheLayout": {"cacheField": fields}}}
    doc: dict[str, Any] = {
        "observationPoint": [{"name": "trace", "observationDomainId": 1,
                              "selectionProcess": ["All"]}
                             | ({"offlineFile": str(trace)} if trace else {})],
        "selectionProcess": [{"name": "All", "selector": [{"name": "all", "selectAll": [None]}],
                              "cache": "Flow cache"}],
        "cache": [cache],
    }
    if port is not None:
        cache["exportingProcess"] = ["Export"]
        doc["exportingProcess"] = [{"name": "Export", "destination": [{
            "name": "nfcapd", "udpExporter": {"ipfixVersion": 10, "destinationPort": port,
                                              "destinationIPAddress": "127.0.0.1"}}]}]
    return doc


def _write_config(name: str, doc: dict[str, Any]) -> Path:
    path = OUT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


def cache_config(max_flows: int) -> Path:
    """``config_doc(max_flows)`` in a file; ``--export`` adds the exporting process."""
    return _write_config(f"cache-{max_flows}.json", config_doc(max_flows))


def run_config(trace: Path, port: int, max_flows: int | None = None) -> Path:
    """The offline config file ``flowprobe run -c`` (and ``replay -c``) meters ``trace`` with,
    exporting to 127.0.0.1:``port``."""
    return _write_config(f"configs/{trace.stem}-{max_flows or 'default'}-{port}.json",
                         config_doc(max_flows, trace, port))


# The config rows' collector port, one per trace and cache size: each of their runs loads the
# same config file, as a service restarted with its config does, so from the second load on
# its validation comes from the validated-config cache (probe/config/validated.py).
CONFIG_PORTS: dict[tuple[str, int | None], int] = {}


def config_port(trace: Path, max_flows: int | None) -> int:
    return CONFIG_PORTS.setdefault((trace.stem, max_flows), free_udp_port())


def flowprobe_config_cmd(trace: Path, port: int, max_flows: int | None = None) -> list[str]:
    return [str(FLOWPROBE), "replay", str(trace), "-c", str(run_config(trace, port, max_flows)),
            "--export", f"udp://127.0.0.1:{port}", "--version", "10", "--rate", "0"]


def flowprobe_run_cmd(trace: Path, port: int, max_flows: int | None = None) -> list[str]:
    return [str(FLOWPROBE), "run", "-c", str(run_config(trace, port, max_flows)), "--rate", "0"]


def softflowd_records(log: str) -> int | None:
    """softflowd -d's exit summary: 'Flows exported: F (R records) in P packets'."""
    m = re.search(r"Flows exported: \d+ \((\d+) records\)", log)
    return int(m.group(1)) if m else None


def flowprobe_records(log: str) -> int | None:
    """flowprobe's exit summary: one 'records N' line per cache."""
    found = re.findall(r"^\s*records\s+(\d+)\s*$", log, flags=re.MULTILINE)
    return sum(int(n) for n in found) if found else None


def softflowd_evictions(log: str) -> int | None:
    """softflowd -d's expiry reasons: 'maxflows = N' (flows forced out of a full table)."""
    m = re.search(r"maxflows =\s*(\d+)", log)
    return int(m.group(1)) if m else None


def flowprobe_evictions(log: str) -> int | None:
    """flowprobe's exit summary: 'expired: lack of resources N' per cache (0 when absent)."""
    found = re.findall(r"expired: lack of resources\s+(\d+)", log)
    return sum(int(n) for n in found) if "records" in log else None


SYSTEMS = {
    # name: (command, octets the collector should show, records the exporter says it sent,
    #        flows it ended because its cache was full)
    "softflowd": (softflowd_cmd, "l2_octets", softflowd_records, softflowd_evictions),
    "flowprobe": (flowprobe_cmd, "ip_octets", flowprobe_records, flowprobe_evictions),
    "flowprobe -c": (flowprobe_config_cmd, "ip_octets", flowprobe_records, flowprobe_evictions),
    "flowprobe run": (flowprobe_run_cmd, "ip_octets", flowprobe_records, flowprobe_evictions),
}
SIZES_ONLY = ("flowprobe -c", "flowprobe run")  # their question (one path) is not the hostile rows'



def flowprobe_available() -> str | None:
    """None if ``flowprobe replay --export`` exists, else why not."""
    if not FLOWPROBE.exists():
        return f"{FLOWPROBE} not installed"
    r = subprocess.run([str(FLOWPROBE), "replay", "--help"], capture_output=True, text=True)
    if r.returncode != 0 or "--export" not in r.stdout:
        return "flowprobe replay --export not implemented yet"
    return None


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, steal) clock ticks of all CPUs since boot (/proc/stat), None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    return user + nice + system + irq + softirq, steal


def run_once(system: str, trace: Trace, want: dict[Key, tuple[int, int]], workdir: Path,
             keep: bool, max_flows: int | None = None) -> Run:
    cmd_of, _, records_of, evictions_of = SYSTEMS[system]
    col = Collector(workdir, config_port(trace.path, max_flows) if system in SIZES_ONLY else None)
    try:
        log = col.dir / f"{system}.log"
        load = os.getloadavg()[0]
        ticks0 = _cpu_ticks()
        run = measure(cmd_of(trace.path, col.port, max_flows), log)
        ticks1 = _cpu_ticks()
        col.stop()
        if ticks0 is not None and ticks1 is not None:
            hz = os.sysconf("SC_CLK_TCK")
            busy = (ticks1[0] - ticks0[0]) / hz
            run.others_cpu_s = max(0.0, busy - run.cpu_s - (col.cpu_s or 0.0))
            run.steal_s = (ticks1[1] - ticks0[1]) / hz
        text = log.read_text(errors="replace")
        sent = records_of(text)
        run.evictions = evictions_of(text)
        run.collector = {**col.info(), "socket_drops": col.drops, "records_sent": sent,
                         "nfcapd_cpu_s": col.cpu_s}
        run.loadavg_before = load
        run.check = compare(col.totals(), want)
        if run.exit_code != 0:
            run.check["ok"] = False
            run.check["error"] = log.read_text(errors="replace")[-500:]
        # Loss: the kernel dropped datagrams at nfcapd's socket, or nfcapd stored fewer records
        # than the exporter says it sent. (nfdump's "Sequence failures" is no measure here:
        # softflowd's IPFIX sequence numbers are wrong, and nfdump 1.7.1 leaves IPFIX options
        # records out of its count, so every mid-stream options record reads as a failure.)
        run.check["loss"] = col.drops > 0 or sent is None or sent != run.collector.get("Flows")
    finally:
        if col.proc.poll() is None:
            col.stop()
        if not keep:
            col.remove()
    return run


def baseline(workdir: Path, keep: bool, system: str = "flowprobe",
             max_flows: int | None = None) -> Run:
    """A system on a one-packet trace, run as a case runs it (the same cache size, so for
    flowprobe the same config to validate): start-up time and the RSS with no flows (for
    flowprobe the interpreter, numpy and the pipeline), the base memory per flow is measured
    from."""
    pcap = workdir / "one-packet.pcap"
    if not pcap.exists():
        tracegen.generate(pcap, 1, 1)
    col = Collector(workdir, config_port(pcap, max_flows) if system in SIZES_ONLY else None)
    try:
        run = measure(SYSTEMS[system][0](pcap, col.port, max_flows),
                      col.dir / f"baseline-{system}.log")
    finally:
        col.stop()
        if not keep:
            col.remove()
    return run


# -- profile ------------------------------------------------------------------------------------

def profile_flowprobe(trace: Trace, workdir: Path, keep: bool) -> tuple[Path, dict[str, float]]:
    """One flowprobe replay under cProfile; its time split by box (probe sub-package)."""
    col = Collector(workdir)
    prof = OUT / f"profile-{trace.path.stem}.prof"
    try:
        cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "probe",
               *flowprobe_cmd(trace.path, col.port)[1:]]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT,
                       timeout=RUN_TIMEOUT_S)
    finally:
        col.stop()
        if not keep:
            col.remove()
    return prof, time_by_box(prof)


_HELPERS = {"branchless"}


def time_by_box(prof: Path) -> dict[str, float]:
    """Seconds per box: a probe function's own time goes to its package; a library or builtin
    function's own time is split among its callers (by the time each call path spent in it)
    and so on up to the nearest probe function; module bodies and the import machinery count
    as start-up."""
    stats = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    memo: dict[tuple, dict[str, float]] = {}

    def box(func: tuple) -> str | None:
        path = func[0].replace("\\", "/")
        if func[2] == "<module>" or "importlib" in path or path.startswith("<frozen"):
            return "start-up (imports)"
        if "/probe/" in path:
            name = path.split("/probe/", 1)[1].split("/")[0].removesuffix(".py")
            # helper modules (np.where without branches) are the time of the box calling them
            return None if name in _HELPERS else "probe." + name
        return None

    def share(func: tuple, seen: frozenset) -> dict[str, float]:
        if func in memo:
            return memo[func]
        b = box(func)
        if b is not None:
            return memo.setdefault(func, {b: 1.0})
        callers = stats[func][4]
        if not callers or func in seen:
            return {"other": 1.0}
        total = sum(v[2] for v in callers.values())
        out: dict[str, float] = {}
        for caller, v in callers.items():
            w = v[2] / total if total > 0 else 1 / len(callers)
            for k, x in share(caller, seen | {func}).items():
                out[k] = out.get(k, 0.0) + w * x
        memo[func] = out
        return out

    totals: dict[str, float] = {}
    for func, (_, _, tt, _, _) in stats.items():
        for k, x in share(func, frozenset()).items():
            totals[k] = totals.get(k, 0.0) + tt * x
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


# -- report -------------------------------------------------------------------------------------

def median_of(runs: list[Run]) -> dict[str, float]:
    return {
        "wall_s": statistics.median(r.wall_s for r in runs),
        "cpu_s": statistics.median(r.cpu_s for r in runs),
        "maxrss_mb": statistics.median(r.maxrss_kb for r in runs) / 1024,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = ("trace", "system", "wall s", "CPU s", "peak RSS MB", "Mpkt/s", "wall ratio",
            "CPU ratio", "B/flow", "evict/s", "totals", "loss")
    lines = [head]
    for r in rows:
        if r.get("unavailable"):
            lines.append((r["trace"], r["system"], "not available", *[""] * (len(head) - 3)))
            continue
        m = r["median"]
        lines.append((
            r["trace"], r["system"], f"{m['wall_s']:.2f}", f"{m['cpu_s']:.2f}",
            f"{m['maxrss_mb']:.0f}", f"{r['packets'] / m['wall_s'] / 1e6:.2f}",
            f"{r['ratio']:.2f}x" if r.get("ratio") else "",
            f"{r['cpu_ratio']:.2f}x" if r.get("cpu_ratio") else "",
            f"{r['bytes_per_flow']:.0f}" if r.get("bytes_per_flow") else "",
            f"{r['evictions_per_s'] / 1000:.0f}k" if r.get("evictions_per_s") else "",
            _totals_cell(r), "lost" if r["loss"] else "none",
        ))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    out = []
    for j, row in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _totals_cell(row: dict[str, Any]) -> str:
    failed = [r["exit_code"] for r in row["runs"] if r["exit_code"] != 0]
    if failed:
        return f"exit {failed[0]}"
    return "identical" if row["totals_ok"] else "DIFFER"


def marginal_bytes_per_flow(rows: list[dict[str, Any]]) -> float | None:
    """RSS growth per extra cached flow between the traces with the fewest and most flows in
    cache: batch buffers and the interpreter cancel out, the flow table does not."""
    fp = [r for r in rows if r["system"] == "flowprobe" and r.get("max_active_flows")
          and not r.get("max_flows")]  # the sizes' rows: the default cache
    if len(fp) < 2:
        return None
    lo = min(fp, key=lambda r: r["max_active_flows"])
    hi = max(fp, key=lambda r: r["max_active_flows"])
    flows = hi["max_active_flows"] - lo["max_active_flows"]
    if flows < 1000:
        return None
    return (hi["median"]["maxrss_mb"] - lo["median"]["maxrss_mb"]) * 1024 * 1024 / flows


def acceptance(rows: list[dict[str, Any]], startup_s: float | None = None) -> list[str]:
    """Issues #6's and #11's acceptance criteria, evaluated on this run's medians.

    flowprobe's start-up (one-packet trace) dominates the 100k trace, which makes the
    per-packet criterion easy; the same ratio without it is printed too."""
    fp = {r["trace"]: r for r in rows if r["system"] == "flowprobe" and "median" in r}
    out = []
    if "1M" in fp and fp["1M"].get("ratio"):
        r = fp["1M"]
        ratio, rss = r["ratio"], r["median"]["maxrss_mb"]
        out.append(f"1M: flowprobe/softflowd wall {ratio:.2f}x (goal <= 1.0x, stretch 0.5x): "
                   f"{'met' if ratio <= 1.0 else 'NOT met'}; peak RSS {rss:.0f} MB "
                   f"(<= 150 MB): {'met' if rss <= 150 else 'NOT met'}")
    for system in ("softflowd", "flowprobe"):
        per = {r["trace"]: r["median"]["wall_s"] / r["packets"]
               for r in rows if r["system"] == system and "median" in r}
        if "100k" in per and "5M" in per:
            g = per["5M"] / per["100k"]
            verdict = ("met" if g <= 1.2 else "NOT met") if system == "flowprobe" else "reference"
            line = f"{system}: time per packet 5M / 100k = {g:.2f} (<= 1.2): {verdict}"
            if system == "flowprobe" and startup_s is not None:
                net = {r["trace"]: (r["median"]["wall_s"] - startup_s) / r["packets"]
                       for r in rows if r["system"] == system and r["trace"] in ("100k", "5M")}
                if net["100k"] > 0:
                    line += f"; without start-up {net['5M'] / net['100k']:.2f}"
            out.append(line)
    walls = {r["system"]: r["median"]["wall_s"] for r in rows
             if r["trace"] == "1M" and "median" in r}
    if "flowprobe run" in walls and "flowprobe -c" in walls:  # issue #12: one path for both
        ratio = walls["flowprobe run"] / walls["flowprobe -c"]
        line = (f"1M: flowprobe run -c / flowprobe replay -c, same config, wall {ratio:.2f}x "
                f"(<= 1.10): {'met' if ratio <= 1.10 else 'NOT met'}")
        if "flowprobe" in walls:
            load = walls["flowprobe -c"] - walls["flowprobe"]
            ratio = walls["flowprobe run"] / walls["flowprobe"]
            line += (f"; / flowprobe replay with its built-in config {ratio:.2f}x (<= 1.10): "
                     f"{'met' if ratio <= 1.10 else 'NOT met'} (loading the config file, "
                     f"validated before, takes {load:+.2f} s)")
        out.append(line)
    soft = {r["trace"]: r for r in rows if r["system"] == "softflowd" and "median" in r}
    for label in ("flood 1M", "scan 1M"):
        if label in fp and fp[label].get("ratio"):
            r = fp[label]
            good = r["ratio"] <= 1.0 and r["totals_ok"] and not r["loss"]
            out.append(f"{label}, full cache: flowprobe/softflowd wall {r['ratio']:.2f}x (<= 1.0x, "
                       f"goal 0.5x), totals {'identical' if r['totals_ok'] else 'DIFFER'}, "
                       f"{'loss' if r['loss'] else 'no loss'}: {'met' if good else 'NOT met'}")
    label = "concurrent 1M"
    if label in fp and label in soft and fp[label].get("bytes_per_flow"):
        mine, theirs = fp[label]["bytes_per_flow"], soft[label].get("bytes_per_flow") or 0.0
        out.append(f"{label}: {fp[label]['max_active_flows']} flows cached at once, flowprobe "
                   f"{mine:.0f} B/flow vs softflowd {theirs:.0f} (<= softflowd, goal 100): "
                   f"{'met' if mine <= theirs else 'NOT met'}")
    return out


def environment() -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "missing"
        text = (r.stdout + r.stderr).strip().splitlines()
        return text[0] if text else ""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "host_cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "nfcapd": version(["nfcapd", "-V"]),
        "softflowd": "1.1.0" if "1.1.0" in version(["softflowd", "-h"]) else "unknown",
        "git": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip(),
    }


def bench_case(case: Case, trace: Trace, systems: list[str], ready: list[str], runs_each: int,
               workdir: Path, keep: bool, bases: dict[tuple[str, int | None], int],
               why_not: str | None) -> list[dict[str, Any]]:
    """Every system's runs on one trace, alternating, and a table row each."""
    # Runs alternate between the systems (softflowd, flowprobe, softflowd, ...), so a
    # machine whose speed drifts during the bench (a shared host) weighs on both alike.
    runs: dict[str, list[Run]] = {s: [] for s in ready}
    want = {s: expected(trace.totals, SYSTEMS[s][1]) for s in ready}
    for system in ready:  # a config validated once is read back: time the runs that do so
        if system in SIZES_ONLY:
            run = run_once(system, trace, want[system], workdir, keep, case.max_flows)
            print(f"[bench]   {system} warm-up (validates its config, untimed): "
                  f"{run.wall_s:.2f} s wall", file=sys.stderr)
    for i in range(runs_each):
        for system in ready:
            run = run_once(system, trace, want[system], workdir, keep, case.max_flows)
            runs[system].append(run)
            print(f"[bench]   {system} run {i + 1}: {run.wall_s:.2f} s wall, "
                  f"{run.cpu_s:.2f} s CPU, {run.maxrss_kb / 1024:.0f} MB, "
                  f"totals {'ok' if run.check['ok'] else 'DIFFER'}, "
                  f"{'LOSS' if run.check['loss'] else 'no loss'}", file=sys.stderr)
    rows = []
    soft_wall = soft_cpu = None
    active = int(trace.summary.get("max_active_flows", 0))
    if case.max_flows:
        active = min(active, case.max_flows)
    for system in systems:
        row: dict[str, Any] = {"trace": case.label, "system": system, "packets": case.packets,
                               "max_flows": case.max_flows}
        if system not in runs:
            row.update(unavailable=why_not)
            rows.append(row)
            continue
        med = median_of(runs[system])
        row.update(median=med, totals_ok=all(r.check["ok"] for r in runs[system]),
                   loss=any(r.check["loss"] for r in runs[system]),
                   runs=[r.__dict__ for r in runs[system]])
        evictions = [r.evictions for r in runs[system]]
        if case.max_flows and None not in evictions:
            row["evictions_per_s"] = statistics.median(e / r.wall_s for e, r in zip(
                evictions, runs[system], strict=True) if r.wall_s > 0)  # type: ignore[operator]
        if system == "softflowd":
            soft_wall, soft_cpu = med["wall_s"], med["cpu_s"]
        elif soft_wall:
            row["ratio"] = med["wall_s"] / soft_wall
            row["cpu_ratio"] = med["cpu_s"] / soft_cpu if soft_cpu else None
        if active:
            key = (system, case.max_flows)
            if key not in bases:
                bases[key] = baseline(workdir, keep, system, case.max_flows).maxrss_kb
            row["max_active_flows"] = active
            row["base_rss_mb"] = bases[key] / 1024
            row["bytes_per_flow"] = (med["maxrss_mb"] * 1024 - bases[key]) * 1024 / active
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100k,1M,5M",
                    help="comma-separated trace sizes in packets (default 100k,1M,5M)")
    ap.add_argument("--runs", type=int, default=3, help="runs per system and trace (median)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated, of: softflowd, flowprobe (replay), flowprobe -c "
                         "(replay -c CONFIG), flowprobe run (run -c CONFIG; these two on the "
                         "sizes only); default all")
    ap.add_argument("--hostile", default=",".join(HOSTILE), metavar="CASE,...",
                    help="hostile rows after the sizes: " + ", ".join(HOSTILE)
                         + " (default all; none for only the sizes)")
    ap.add_argument("--trace-dir", type=Path, default=OUT / "traces",
                    help="where generated traces are cached (default bench/out/traces)")
    ap.add_argument("--nice", type=int, default=0,
                    help="run exporters and nfcapd at this niceness (negative needs root): "
                         "steadier numbers on a machine busy with other work")
    ap.add_argument("--profile", metavar="SIZE", type=parse_size,
                    help="also run flowprobe once under cProfile on this trace size and print "
                         "its time per box (capture, cache, export, start-up)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the nfcapd directories and exporter logs of every run")
    ap.add_argument("--live", action="store_true",
                    help="the live row instead (root): the highest tcpreplay rate a live probe "
                         "takes without a drop, beside softflowd (tools/bench_live.py)")
    ap.add_argument("--rates", default="20k,50k,100k,200k", help="--live: rates in pps")
    ap.add_argument("--seconds", type=int, default=10, help="--live: seconds per rate")
    ap.add_argument("--workers", type=int, default=1, help="--live: flowprobe run --workers")
    args = ap.parse_args(argv)
    if args.live:
        from tools.bench_live import live_bench

        return live_bench([parse_size(r) for r in args.rates.split(",")], args.seconds,
                          args.workers, "softflowd" in args.systems)
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    except argparse.ArgumentTypeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    names = [h.strip() for h in args.hostile.split(",") if h.strip() and h.strip() != "none"]
    if [h for h in names if h not in HOSTILE]:
        print(f"bench: --hostile takes {', '.join(HOSTILE)} or none", file=sys.stderr)
        return 2
    hostile = [HOSTILE[h] for h in names]
    if args.nice:
        NICE[:] = ["nice", "-n", str(args.nice)]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or args.runs < 1:
        print(f"bench: unknown system {unknown} or --runs < 1", file=sys.stderr)
        return 2
    missing = [tool for tool in ("softflowd", "nfcapd", "nfdump") if not shutil.which(tool)]
    if missing:
        print(f"bench: {', '.join(missing)} not on PATH (apt-get install softflowd nfdump)",
              file=sys.stderr)
        return 2

    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    workdir = OUT / f"run-{stamp}"
    workdir.mkdir()
    why_not = flowprobe_available() if any(s.startswith("flowprobe") for s in systems) \
        else None
    result: dict[str, Any] = {"started": stamp, "runs_per_system": args.runs, "nice": args.nice,
                              "environment": environment(), "traces": [], "rows": []}
    bases: dict[tuple[str, int | None], int] = {}  # (system, cache) -> one-packet peak RSS KB
    result["rss_floor_kb"] = rss_floor_kb(workdir)
    # flowprobe's validated-config cache: the bench's own, empty at the start
    os.environ["FLOWPROBE_CACHE_DIR"] = str(workdir / "cache")
    for system in systems:
        if system in SYSTEMS and not (system.startswith("flowprobe") and why_not is not None):
            if system in SIZES_ONLY:  # the first load of a config validates it in full
                result[f"{system}_baseline_first"] = baseline(workdir, args.keep,
                                                              system).__dict__
            base = baseline(workdir, args.keep, system)
            bases[(system, None)] = base.maxrss_kb
            result[f"{system}_baseline"] = base.__dict__

    cases = [Case(size_label(packets), packets) for packets in sizes] + hostile
    for case in cases:
        print(f"[bench] trace {case.label}: ", end="", flush=True, file=sys.stderr)
        trace = get_trace(case.packets, args.seed, args.trace_dir, case)
        took = trace.gen_seconds
        print(f"generated in {took:.1f} s" if took is not None else "cached", file=sys.stderr)
        result["traces"].append({k: v for k, v in trace.summary.items() if k != "path"}
                                | {"label": case.label, "file": trace.path.name,
                                   "max_flows": case.max_flows})
        here = [s for s in systems if not (case.max_flows and s in SIZES_ONLY)]
        ready = [s for s in here if not (s.startswith("flowprobe") and why_not is not None)]
        result["rows"] += bench_case(case, trace, here, ready, args.runs, workdir, args.keep,
                                     bases, why_not)
    print()
    print(table(result["rows"]))
    notes = [f"flowprobe: {why_not}"] if why_not else []
    for system in SYSTEMS:
        if f"{system}_baseline" in result:
            b = result[f"{system}_baseline"]
            first = result.get(f"{system}_baseline_first")
            notes.append(f"{system} on a one-packet trace (start-up and exit): {b['wall_s']:.2f} "
                         f"s wall, {b['maxrss_kb'] / 1024:.0f} MB peak RSS"
                         + (f" (the first load of its config, validated in full: "
                            f"{first['wall_s']:.2f} s, {first['maxrss_kb'] / 1024:.0f} MB)"
                            if first else ""))
    for t in result["traces"]:
        notes.append(f"{t['label']}: {t['packets']} packets, {t['flows']} flows "
                     f"({t['packets_per_flow']} packets/flow), {t['duration_s'] / 60:.0f} min, "
                     f"max {t.get('max_active_flows', '?')} flows in cache"
                     + (f" (cache of {t['max_flows']})" if t.get("max_flows") else ""))
    # Other work on the machine during the runs, as a share of a CPU over each run's wall time
    # (the load average would count the bench's own previous runs).
    taken = [((r.get("others_cpu_s") or 0.0) + (r.get("steal_s") or 0.0)) / r["wall_s"]
             for row in result["rows"] for r in row.get("runs", [])
             if r.get("others_cpu_s") is not None and r["wall_s"] > 0.2]
    busy = max(taken, default=0.0)
    if busy > 0.25:
        notes.append(f"WARNING: other work or the hypervisor (steal) took up to {busy:.2f} CPU "
                     "during a run: wall times are inflated, CPU times less so")
    marginal = marginal_bytes_per_flow(result["rows"])
    if marginal is not None:
        result["flowprobe_marginal_bytes_per_flow"] = marginal
        notes.append(f"flowprobe memory per cached flow: {marginal:.0f} B marginal (RSS growth "
                     "between traces / growth of max flows in cache); B/flow in the table is "
                     "(RSS - one-packet RSS) / max flows, batch buffers included")
    startup = result["flowprobe_baseline"]["wall_s"] if "flowprobe_baseline" in result else None
    result["acceptance"] = acceptance(result["rows"], startup)
    notes += result["acceptance"]
    print("\n".join(notes))
    if args.profile and why_not is None:
        trace = get_trace(args.profile, args.seed, args.trace_dir)
        prof, boxes = profile_flowprobe(trace, workdir, args.keep)
        total = sum(boxes.values())
        result["profile"] = {"trace": size_label(args.profile), "file": str(prof), "boxes": boxes}
        print(f"\nflowprobe under cProfile, {size_label(args.profile)} trace ({total:.2f} s "
              f"profiled; {prof.relative_to(ROOT)}):")
        for name, secs in boxes.items():
            if secs >= 0.005:
                print(f"  {name:<22} {secs:6.2f} s  {100 * secs / total:4.0f} %")
    path = OUT / f"bench-{stamp}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"results: {path.relative_to(ROOT)}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    bad = [r for r in result["rows"] if not r.get("unavailable")
           and (not r["totals_ok"] or r["loss"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
