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

from tests.export.peers import drain, free_port, udp_sink, wait_until

Key = tuple[str, str, int, int, int]  # src, dst, sport, dport, proto
PROTO_NAMES = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmp6": 58, "gre": 47}


def sfprobe_datagrams(pcap: Path, workdir: Path, rate: int = 1) -> list[bytes]:
    """What pmacctd's sfprobe sends for ``pcap`` (1-in-``rate`` sampling), every datagram."""
    with udp_sink() as sink:
        conf = workdir / "sfprobe.conf"
        conf.write_text(
            "daemonize: false\n"
            f"pcap_savefile: {pcap}\n"
            "plugins: sfprobe\n"
            f"sfprobe_receiver: 127.0.0.1:{sink.getsockname()[1]}\n"
            "sfprobe_agentip: 192.0.2.1\n"
            f"sampling_rate: {rate}\n")
        # Under load pmacctd's core may outlive its plugin at the end of the file ("connection
        # lost", exit 1) and the last packets go unsampled: the datagrams it did send are what
        # both collectors are given, so that costs nothing here.
        r = subprocess.run(["pmacctd", "-f", str(conf)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 or "connection lost" in r.stderr, r.stderr
        return drain(sink)


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
