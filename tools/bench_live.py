"""`make bench` live row: the highest tcpreplay rate a live probe takes without a drop.

    python -m tools.bench --live [--rates 20k,50k,100k,200k] [--seconds 10] [--workers 1]

Needs root and ``ip netns``: a veth pair with one end in a namespace made (and always removed)
here. For each rate, lowest first, tcpreplay sends a full-frame tracegen trace (looped) for
``--seconds`` into the namespace's end; ``flowprobe run`` and then softflowd capture our end,
export IPFIX to a UDP socket on loopback that only counts datagrams, and are asked afterwards
over their control sockets how many packets libpcap received and dropped. A rate passes when the
probe received every packet tcpreplay sent and libpcap and the interface dropped none. flowprobe
stops at its first failing rate; softflowd is measured at the same rates.

Then the flood row: the same for a looped SYN flood from random spoofed sources (tracegen's
``synflood`` pattern), every packet a new flow, into a full cache of 65536 flows for both
(``softflowd -m 65536``): the rate a probe keeps up with while it evicts one flow per packet.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRACE_PACKETS = 100_000
FLOOD_MAX_FLOWS = 65536  # the flood row's cache size, for both probes


def netns_problem() -> str | None:
    """Why live runs cannot happen here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("ip") or not shutil.which("tcpreplay"):
        return "needs iproute2 and tcpreplay"
    probe = f"fp-check-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "cannot create network namespaces here"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextmanager
def veth_into_netns(tag: str) -> Iterator[tuple[str, str, str]]:
    """(namespace, our end, its end): no IPv6 on either end, so the kernel sends nothing of its
    own; both are removed on the way out, whatever happened."""
    ns, ours, peer = f"fp-{tag}", f"fpx{tag}", f"fpy{tag}"
    try:
        _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", ours, "type", "veth", "peer", "name", peer)
        _sh("ip", "link", "set", peer, "netns", ns)
        _sh("sysctl", "-q", "-w", f"net.ipv6.conf.{ours}.disable_ipv6=1")
        _sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{peer}.disable_ipv6=1")
        _sh("ip", "link", "set", ours, "up")
        _sh("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
        yield ns, ours, peer
    finally:
        subprocess.run(["ip", "link", "del", ours], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def replayable_trace(path: Path, packets: int, *extra: str) -> Path:
    """A ``tools.tracegen`` trace tcpreplay can send onto a veth: full frames (the snap length
    above every frame) and IP packets of at most 1500 octets. ``extra``: more tracegen flags."""
    subprocess.run([sys.executable, "-m", "tools.tracegen", "--packets", str(packets),
                    "--snaplen", "1600", *extra, str(path)], cwd=ROOT, check=True,
                   capture_output=True)
    return path


def sockets_on(if_name: str) -> int:
    """Packet sockets bound to the interface (a new veth: only the probe's)."""
    index = Path(f"/sys/class/net/{if_name}/ifindex").read_text().strip()
    rows = Path("/proc/net/packet").read_text().splitlines()[1:]
    return sum(1 for r in rows if len(r.split()) > 4 and r.split()[4] == index)


class UdpCounter:
    """A loopback collector that only counts what arrives (the exporters' load, not ours)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recv(65535)
                self.datagrams += 1
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def probe_config(if_name: str, port: int, max_flows: int = 131072) -> dict[str, Any]:
    """5-tuple flows of everything on the interface, IPFIX over UDP to ``port``."""
    keys = ["ipVersion", "sourceIPv4Address", "destinationIPv4Address", "sourceIPv6Address",
            "destinationIPv6Address", "protocolIdentifier", "sourceTransportPort",
            "destinationTransportPort", "icmpTypeCodeIPv4", "icmpTypeCodeIPv6"]
    nonkeys = ["octetDeltaCount", "packetDeltaCount", "flowStartMilliseconds",
               "flowEndMilliseconds", "flowEndReason"]
    fields = [{"name": f"f{i}", "ieName": n, "isFlowKey": [None]} for i, n in enumerate(keys)]
    fields += [{"name": f"n{i}", "ieName": n} for i, n in enumerate(nonkeys)]
    return {
        "observationPoint": [{"name": "live", "observationDomainId": 1, "ifName": [if_name],
                              "selectionProcess": ["All"]}],
        "selectionProcess": [{"name": "All", "selector": [{"name": "all", "selectAll": [None]}],
                              "cache": "Flows"}],
        "cache": [{"name": "Flows", "timeoutCache": {
            "maxFlows": max_flows, "activeTimeout": 1800, "idleTimeout": 300,
            "cacheLayout": {"cacheField": fields}}, "exportingProcess": ["Export"]}],
        "exportingProcess": [{"name": "Export", "destination": [{"name": "Collector",
            "udpExporter": {"ipfixVersion": 10, "destinationIPAddress": "127.0.0.1",
                            "destinationPort": port}}]}],
    }


def _wait_sockets(if_name: str, n: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while sockets_on(if_name) < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the probe never opened its capture: {log.read_text()[-500:]}")
        time.sleep(0.05)
    time.sleep(0.2)


def _replay(ns: str, peer: str, trace: Path, rate: int, seconds: int) -> int:
    """Send for ``seconds`` at ``rate`` pps; the packets tcpreplay says it sent."""
    out = subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", peer,
                          f"--pps={rate}", "--loop=0", f"--duration={seconds}", str(trace)],
                         capture_output=True, text=True)
    m = re.search(r"Actual: (\d+) packets", out.stdout)
    if not m:
        raise RuntimeError(f"tcpreplay: {out.stdout}{out.stderr}")
    return int(m.group(1))


def _settle(read: Any, timeout: float = 10.0) -> dict[str, int]:
    """Counters once they stop moving (the probe has read what the kernel holds)."""
    last, deadline = read(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read()
        if now == last:
            return now
        last = now
    return last


def run_flowprobe(tmp: Path, ns: str, ours: str, peer: str, trace: Path, rate: int,
                  seconds: int, workers: int, max_flows: int | None = None) -> dict[str, Any]:
    sink = UdpCounter()
    cfg = tmp / "live.json"
    cfg.write_text(json.dumps(probe_config(ours, sink.port, max_flows or 131072)))
    ctl, log = tmp / "fp.sock", tmp / "fp.log"
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "flowprobe"), "run", "-c", str(cfg),
                             "--control-socket", str(ctl), "--workers", str(workers)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        _wait_sockets(ours, workers, proc, log)
        sent = _replay(ns, peer, trace, rate, seconds)

        def read() -> dict[str, int]:
            out = subprocess.run([str(ROOT / ".venv" / "bin" / "flowprobe"), "stats", "--json",
                                  "--control-socket", str(ctl)], capture_output=True, text=True)
            cap = json.loads(out.stdout)["observation_points"][0]["capture"]
            return {k: int(cap[k]) for k in ("received", "dropped", "ifdropped")}

        counts = _settle(read)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.close()
    return {"sent": sent, **counts, "datagrams": sink.datagrams}


def run_softflowd(tmp: Path, ns: str, ours: str, peer: str, trace: Path, rate: int,
                  seconds: int, max_flows: int | None = None) -> dict[str, Any]:
    sink = UdpCounter()
    ctl = tmp / "sf.sock"
    cache = ["-m", str(max_flows)] if max_flows else []
    proc = subprocess.Popen(["softflowd", "-i", ours, "-v", "10", "-6", "-d", "-c", str(ctl),
                             *cache, "-n", f"127.0.0.1:{sink.port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_sockets(ours, 1, proc, Path(os.devnull))
        sent = _replay(ns, peer, trace, rate, seconds)

        def read() -> dict[str, int]:
            out = subprocess.run(["softflowctl", "-c", str(ctl), "statistics"],
                                 capture_output=True, text=True).stdout
            got = {}
            for key, label in (("received", "received by libpcap"),
                               ("dropped", "dropped by libpcap"),
                               ("ifdropped", "dropped by interface")):
                m = re.search(rf"Packets {label}: (\d+)", out)
                got[key] = int(m.group(1)) if m else -1
            return got

        counts = _settle(read)
        subprocess.run(["softflowctl", "-c", str(ctl), "shutdown"], capture_output=True)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.close()
    return {"sent": sent, **counts, "datagrams": sink.datagrams}


def clean(r: dict[str, Any]) -> bool:
    return r["received"] == r["sent"] and r["dropped"] == 0 and r["ifdropped"] == 0


def _cell(r: dict[str, Any] | None, seconds: int) -> str:
    """tcpreplay cannot always reach the asked rate (it shares the CPUs with the probe), so
    the rate it did reach is shown too."""
    if r is None:
        return "-"
    state = "ok" if clean(r) else "LOSS"
    return (f"{state} at {r['sent'] / seconds / 1000:.0f}k pps sent: {r['received']}/"
            f"{r['sent']} received, {r['dropped']} dropped, {r['ifdropped']} if-dropped")


def _rates(name: str, tmp: Path, ns: str, ours: str, peer: str, trace: Path, rates: list[int],
           seconds: int, workers: int, softflowd: bool, max_flows: int | None
           ) -> dict[str, Any]:
    """One row: each rate, lowest first, until flowprobe drops; the best clean rates."""
    rows = []
    for rate in rates:
        fp = run_flowprobe(tmp, ns, ours, peer, trace, rate, seconds, workers, max_flows)
        sf = run_softflowd(tmp, ns, ours, peer, trace, rate, seconds, max_flows) \
            if softflowd and shutil.which("softflowd") else None
        rows.append({"rate_pps": rate, "flowprobe": fp, "softflowd": sf})
        print(f"{name:>6} {rate:>8} pps  flowprobe {_cell(fp, seconds)}  |  softflowd "
              f"{_cell(sf, seconds)}", flush=True)
        if not clean(fp):
            break
        if fp["sent"] < 0.8 * rate * seconds:
            print(f"tcpreplay reached only {fp['sent'] // seconds} pps: higher rates "
                  "are not measurable on this machine", flush=True)
            break
    # the best rate is the one tcpreplay reached, not the one asked for
    best = max((r["flowprobe"]["sent"] // seconds for r in rows if clean(r["flowprobe"])),
               default=None)
    sf_best = max((r["softflowd"]["sent"] // seconds for r in rows
                   if r["softflowd"] and clean(r["softflowd"])), default=None)
    sf_text = ("not measured" if not any(r["softflowd"] for r in rows) else
               f"{sf_best} pps" if sf_best else "drops at every rate")
    cache = f", cache of {max_flows} for both" if max_flows else ""
    print(f"live {name}: flowprobe (--workers {workers}) takes "
          f"{f'{best} pps' if best else 'no tested rate'} for {seconds} s without a drop{cache}; "
          f"softflowd at the same rates: {sf_text}", flush=True)
    return {"rows": rows, "max_flows": max_flows, "flowprobe_best_pps": best,
            "softflowd_best_pps": sf_best}


def live_bench(rates: list[int], seconds: int, workers: int, softflowd: bool) -> int:
    why = netns_problem()
    if why:
        print(f"bench --live: {why}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="flowprobe-live-"))
    try:
        trace, flood = tmp / "trace.pcap", tmp / "flood.pcap"
        replayable_trace(trace, TRACE_PACKETS)
        replayable_trace(flood, TRACE_PACKETS, "--pattern", "synflood", "--duration", "10")
        with veth_into_netns(f"{os.getpid() % 100000}") as (ns, ours, peer):
            result = {
                "normal": _rates("normal", tmp, ns, ours, peer, trace, rates, seconds, workers,
                                 softflowd, None),
                "flood": _rates("flood", tmp, ns, ours, peer, flood, rates, seconds, workers,
                                softflowd, FLOOD_MAX_FLOWS),
            }
        out = ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"bench-live-{time.strftime('%Y%m%dT%H%M%S')}.json"
        path.write_text(json.dumps({"seconds": seconds, "workers": workers, **result},
                                   indent=2))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
