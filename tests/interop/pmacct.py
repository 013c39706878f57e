"""pmacct as an sFlow peer: pmacctd's ``sfprobe`` plugin as the agent, ``sfacctd`` as the
reference collector (Debian ``pmacct``)."""

from __future__ import annotations

import contextlib
import csv
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tests.export.peers import free_port, wait_until
from tools import streams

Key = tuple[str, str, int, int, int]  # src, dst, sport, dport, proto
PROTO_NAMES = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmp6": 58, "gre": 47}


def sfprobe_datagrams(pcap: Path, workdir: Path, rate: int = 1) -> list[bytes]:
    """What pmacctd's sfprobe sends for ``pcap`` (1-in-``rate`` sampling), every datagram.

    pmacctd throws away what its plugin has not read when a file ends, so on a loaded machine
    it used to sample only part of the trace (once: too little for the test's threshold);
    ``tools.streams.sfprobe`` keeps it running until the plugin has read everything."""
    return streams.sfprobe(pcap, rate, workdir)


def send_paced(datagrams: list[bytes], port: int, every: int = 2) -> None:
    """sfacctd reads slower than a loop sends: a millisecond's pause every few datagrams."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, d in enumerate(datagrams):
            s.sendto(d, ("127.0.0.1", port))
            if i % every == every - 1:
                time.sleep(0.001)


@contextlib.contextmanager
def sfacctd(workdir: Path) -> Iterator[tuple[int, Path]]:
    """sfacctd on 127.0.0.1 aggregating by 5-tuple into a CSV written when it stops."""
    port = free_port()
    out = workdir / "sfacctd.csv"
    log = workdir / "sfacctd.log"
    conf = workdir / "sfacctd.conf"
    conf.write_text(
        "daemonize: false\n"
        f"sfacctd_ip: 127.0.0.1\nsfacctd_port: {port}\n"
        "sfacctd_pipe_size: 4194304\nplugin_pipe_size: 10240000\nplugin_buffer_size: 10240\n"
        "plugins: print\naggregate: src_host,dst_host,src_port,dst_port,proto\n"
        f"print_output: csv\nprint_output_file: {out}\nprint_refresh_time: 3600\n")
    with open(log, "wb") as logf:
        proc = subprocess.Popen(["sfacctd", "-f", str(conf)], stdout=logf, stderr=logf)
    try:
        wait_until(lambda: b"waiting for sFlow data" in log.read_bytes(), "sfacctd listening")
        time.sleep(0.2)  # the print plugin starts beside the core
        yield port, out
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def sfacctd_packets(path: Path) -> Counter[Key]:
    totals: Counter[Key] = Counter()
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            proto = PROTO_NAMES.get(row["PROTOCOL"])
            key = (row["SRC_IP"], row["DST_IP"], int(row["SRC_PORT"]), int(row["DST_PORT"]),
                   int(row["PROTOCOL"]) if proto is None else proto)
            totals[key] += int(row["PACKETS"])
    return totals
