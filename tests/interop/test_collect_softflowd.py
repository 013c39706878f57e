"""softflowd -> flowprobe collect, checked against nfcapd/nfdump decoding the same datagrams.

softflowd meters the committed demo capture and exports NetFlow v5, v9 and IPFIX (relative and
absolute times) in ONE run to two destinations (``-n A,B``): our collector (a
subprocess writing JSON lines) and nfcapd. One run matters: softflowd ``-r`` stamps headers with
the wall clock, so two runs would not give the same flow times. The per-5-tuple packet and
byte totals of our JSON must equal nfdump's, and so must every flow's TCP flags, ToS, packets,
bytes and (where nfdump decodes them right, see CASES) start and end to the millisecond.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.export.peers import free_port, have, nfcapd

DEMO = Path(__file__).resolve().parents[2] / "pcaps" / "demo.pcap"
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not have("softflowd", "nfcapd", "nfdump"),
                       reason="softflowd, nfcapd and nfdump are needed"),
    pytest.mark.skipif(not DEMO.exists(), reason="pcaps/demo.pcap not committed"),
]

Key = tuple[int, str, str, int, int]


def _key(proto: int, src: str, dst: str, sport: int, dport: int) -> Key:
    if proto in (1, 58):  # ICMP type/code travel in different fields per protocol version
        sport = dport = 0
    return proto, src, dst, sport, dport


def _ms_text(ns: int) -> str:
    t = datetime.fromtimestamp(ns // 1_000_000 / 1000, UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{ns // 1_000_000 % 1000:03d}"


def _flags(text: str) -> int:
    """nfdump's flag string, CWR first and FIN last, as the tcpControlBits number."""
    return sum(1 << (7 - i) for i, c in enumerate(text[-8:]) if c != ".")


class Totals:
    def __init__(self) -> None:
        self.packets: Counter = Counter()
        self.octets: Counter = Counter()
        self.flows: Counter = Counter()

    def add(self, k: Key, start: str, end: str, flags: int, tos: int, pkts: int,
            octets: int) -> None:
        self.packets[k] += pkts
        self.octets[k] += octets
        self.flows[(k, start, end, flags, tos, pkts, octets)] += 1


def _run_both(softflowd_args: list[str], tmp_path: Path) -> tuple[Totals, Totals, str]:
    out = tmp_path / "flows.json"
    flowdir = tmp_path / "nfcapd"
    nf_port = free_port()
    with nfcapd(flowdir, nf_port):
        ours = subprocess.Popen([sys.executable, "-m", "probe", "collect", "--listen",
                                 "udp://127.0.0.1:0", "--output", str(out)],
                                stderr=subprocess.PIPE, text=True)
        try:
            assert ours.stderr is not None
            line = ours.stderr.readline()
            assert line.startswith("listening on udp://127.0.0.1:"), line
            our_port = int(line.rsplit(":", 1)[1])
            subprocess.run(["softflowd", "-r", str(DEMO), *softflowd_args, "-d", "-c", "none",
                            "-n", f"127.0.0.1:{our_port},127.0.0.1:{nf_port}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                           check=True)
            # softflowd has exited: every datagram is in the kernel; collect drains it on SIGINT
            ours.send_signal(signal.SIGINT)
            _, err = ours.communicate(timeout=20)
        finally:
            if ours.poll() is None:
                ours.kill()
                ours.wait()
    assert ours.returncode == 0, err

    mine = Totals()
    for text in out.read_text().splitlines():
        f = json.loads(text)
        mine.add(_key(f["proto"], f["src_addr"], f["dst_addr"], f.get("src_port", 0),
                      f.get("dst_port", 0)),
                 _ms_text(f["time_flow_start_ns"]), _ms_text(f["time_flow_end_ns"]),
                 f.get("tcp_flags", 0), f.get("ip_tos", 0), f["packets"], f["bytes"])

    dump = subprocess.run(["nfdump", "-R", str(flowdir), "-N", "-6", "-q", "-o",
                           "fmt:%pr|%sa|%da|%sp|%dp|%pkt|%byt|%flg|%tos|%ts|%te"],
                          capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "TZ": "UTC"}).stdout
    theirs = Totals()
    for row in dump.splitlines():
        cols = [c.strip() for c in row.split("|")]
        if len(cols) != 11:
            continue
        dport = int(cols[4]) if "." not in cols[4] else 0  # ICMP prints type.code
        theirs.add(_key(int(cols[0]), cols[1], cols[2], int(cols[3]), dport), cols[9],
                   cols[10], _flags(cols[7]), int(cols[8]), int(cols[5]), int(cols[6]))
    return mine, theirs, err


# How flow times can be compared with nfdump 1.7.1 for each softflowd mode:
# - v5 and IPFIX with absolute milliseconds (-A milli): exactly.
# - IPFIX with flowStart/EndSysUpTime: nfdump shows start and end swapped (the "end before
#   start" the design brief reports), so as an unordered pair.
# - v9: softflowd -r sends sysUptime 0 with first/last near 2^32 ms; nfdump adds them to the
#   boot time without wrapping, we (like goflow2) take the 32-bit difference, so not at all.
# (nfdump 1.7.1 does not decode flowStartNanoseconds: -A nano is covered by hand-made tests.)
CASES = {"v5": (["-v", "5"], "exact"), "v9": (["-v", "9", "-6"], None),
         "ipfix": (["-v", "10", "-6"], "unordered"),
         "ipfix-abs-milli": (["-v", "10", "-6", "-A", "milli"], "exact")}


def _times(flows: Counter, mode: str | None) -> Counter:
    out: Counter = Counter()
    for (k, start, end, *rest), n in flows.items():
        if mode is None:
            start = end = ""
        elif mode == "unordered":
            start, end = sorted((start, end))
        out[(k, start, end, *rest)] += n
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_softflowd_flows_equal_nfdump(case: str, tmp_path: Path) -> None:
    args, times = CASES[case]
    mine, theirs, stats = _run_both(args, tmp_path)
    assert len(theirs.packets) > 10, "nfdump decoded almost nothing: nothing to compare"
    if case == "v5":
        assert all(":" not in k[1] for k in mine.packets)  # v5 carries IPv4 only
    else:
        assert any(":" in k[1] for k in mine.packets), "no IPv6 flows decoded"
    assert mine.packets == theirs.packets
    assert mine.octets == theirs.octets
    assert _times(mine.flows, times) == _times(theirs.flows, times)
    assert "malformed/refused: 0" in stats, stats
