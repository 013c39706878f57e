"""softflowd -> flowprobe collect, checked against nfcapd/nfdump decoding the same stream.

softflowd meters the committed demo capture and exports NetFlow v5, v9 and IPFIX; once to our
collector (a subprocess writing JSON lines) and once to nfcapd. The per-5-tuple packet and byte
totals of our JSON must equal nfdump's. softflowd in ``-r`` mode is deterministic, so both runs
export the same flows.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "pcaps" / "demo.pcap"
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not all(shutil.which(t) for t in ("softflowd", "nfcapd", "nfdump")),
                       reason="softflowd, nfcapd and nfdump are needed"),
    pytest.mark.skipif(not DEMO.exists(), reason="pcaps/demo.pcap not committed"),
]

Key = tuple[int, str, str, int, int]


def _softflowd(version: int, port: int) -> None:
    args = ["softflowd", "-r", str(DEMO), "-v", str(version), "-d", "-c", "none",
            "-n", f"127.0.0.1:{port}"]
    if version != 5:
        args.insert(5, "-6")
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                   check=True)


def _key(proto: int, src: str, dst: str, sport: int, dport: int) -> Key:
    if proto in (1, 58):  # ICMP type/code travel in different fields per protocol version
        sport = dport = 0
    return proto, src, dst, sport, dport


def _ours(version: int, tmp_path: Path) -> tuple[Counter, Counter, str]:
    out = tmp_path / "flows.json"
    proc = subprocess.Popen([sys.executable, "-m", "probe", "collect", "--listen",
                             "udp://127.0.0.1:0", "--output", str(out)],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("listening on udp://127.0.0.1:"), line
        _softflowd(version, int(line.rsplit(":", 1)[1]))
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    packets: Counter = Counter()
    octets: Counter = Counter()
    for text in out.read_text().splitlines():
        f = json.loads(text)
        k = _key(f["proto"], f["src_addr"], f["dst_addr"], f.get("src_port", 0),
                 f.get("dst_port", 0))
        packets[k] += f["packets"]
        octets[k] += f["bytes"]
    return packets, octets, err


def _nfdump(version: int, tmp_path: Path) -> tuple[Counter, Counter]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flowdir = tmp_path / "nfcapd"
    flowdir.mkdir()
    proc = subprocess.Popen(["nfcapd", "-B", "67108864", "-b", "127.0.0.1", "-p", str(port),
                             "-w", str(flowdir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        _softflowd(version, port)
        time.sleep(0.3)
        proc.terminate()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    dump = subprocess.run(["nfdump", "-R", str(flowdir), "-N", "-6", "-q", "-o",
                           "fmt:%pr|%sa|%da|%sp|%dp|%pkt|%byt"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    packets: Counter = Counter()
    octets: Counter = Counter()
    for row in dump.splitlines():
        cols = [c.strip() for c in row.split("|")]
        if len(cols) != 7:
            continue
        dport = int(float(cols[4])) if "." not in cols[4] else 0
        k = _key(int(cols[0]), cols[1], cols[2], int(cols[3]), dport)
        packets[k] += int(cols[5])
        octets[k] += int(cols[6])
    return packets, octets


@pytest.mark.parametrize("version", [5, 9, 10])
def test_softflowd_totals_equal_nfdump(version: int, tmp_path: Path) -> None:
    our_packets, our_octets, stats = _ours(version, tmp_path)
    nf_packets, nf_octets = _nfdump(version, tmp_path)
    assert len(nf_packets) > 10, "nfdump decoded almost nothing: the comparison would be empty"
    if version == 5:
        assert all(":" not in k[1] for k in our_packets)  # v5 carries IPv4 only
    else:
        assert any(":" in k[1] for k in our_packets), "no IPv6 flows decoded"
    assert our_packets == nf_packets
    assert our_octets == nf_octets
    assert "malformed/refused: 0" in stats, stats
