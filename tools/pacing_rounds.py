"""Rounds of a burst replay into an nfcapd with the kernel's default socket buffer (issue #13).

    python -m tools.pacing_rounds [--packets 500k] [--rounds 5] [--rate default,0,10M]

Each round starts a fresh nfcapd on a free loopback port *without* ``-B`` (the kernel's default
receive buffer, 208 KB here: about 90 datagrams), runs ``flowprobe replay TRACE --export
udp://...`` (``--rate R`` unless R is ``default``) and prints the replay's wall time, the
records it sent, the records nfdump stored and the datagrams nfcapd's socket dropped. This is
how the default UDP pacing of offline runs was chosen and checked; its numbers are in the
README ("UDP pacing").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.bench import free_udp_port, get_trace, parse_size, udp_socket_state

FLOWPROBE = Path(sys.executable).with_name("flowprobe")
SENT = re.compile(r"^export \S+: (\d+) records in (\d+) messages", re.M)


def _nfdump_flows(directory: Path) -> int:
    out = subprocess.run(["nfdump", "-R", str(directory), "-I"], capture_output=True,
                         text=True, check=True).stdout
    return int(re.search(r"^Flows: (\d+)", out, re.M)[1])  # type: ignore[index]


def one_round(trace: Path, rate: str, workdir: Path) -> dict[str, float]:
    store = Path(tempfile.mkdtemp(prefix="nfcapd-", dir=workdir))
    port = free_udp_port()
    nfcapd = subprocess.Popen(["nfcapd", "-w", str(store), "-b", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while udp_socket_state(port) is None:
            if nfcapd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nfcapd did not start")
            time.sleep(0.02)
        cmd = [str(FLOWPROBE), "replay", str(trace), "--export", f"udp://127.0.0.1:{port}"]
        if rate != "default":
            cmd += ["--rate", rate]
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.monotonic() - t0
        quiet = 0
        while quiet < 5:  # nfcapd has read its queue
            state = udp_socket_state(port)
            assert state is not None
            quiet = quiet + 1 if state[0] == 0 else 0
            time.sleep(0.05)
        drops = state[1]
    finally:
        for _ in range(20):  # nfcapd 1.7.1 may miss a SIGTERM right after its start
            nfcapd.send_signal(signal.SIGTERM)
            try:
                nfcapd.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                continue
    m = SENT.search(r.stdout)
    assert m, r.stdout
    got = _nfdump_flows(store)
    shutil.rmtree(store)
    return {"wall": wall, "sent": int(m[1]), "messages": int(m[2]), "stored": got,
            "drops": drops, "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=parse_size, default=500_000)
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rate", default="default",
                    help="comma-separated --rate values to try; 'default' passes none")
    ap.add_argument("--workdir", type=Path, default=Path("bench/out"))
    args = ap.parse_args(argv)
    trace = get_trace(args.packets, args.seed, args.workdir / "traces")
    print(f"trace {trace.path} ({args.packets} packets); nfcapd without -B")
    for rate in args.rate.split(","):
        rows = [one_round(trace.path, rate, args.workdir) for _ in range(args.rounds)]
        lost = [r["sent"] - r["stored"] for r in rows]
        walls = " ".join(f"{r['wall']:.2f}" for r in rows)
        loads = " ".join(f"{r['load']:.1f}" for r in rows)
        drops = [r["drops"] for r in rows]
        print(f"--rate {rate}: records lost per round {lost}, datagrams dropped {drops}, of "
              f"{rows[0]['sent']} records in {rows[0]['messages']} messages; wall {walls} s; "
              f"load {loads}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
