"""pmacctd (sfprobe) -> flowprobe collect --listen sflow://, checked against pmacct's sfacctd.

pmacctd meters a generated trace (IPv4 and IPv6, TCP/UDP/ICMP/GRE, VLAN tags, fragments,
frames cut by a 128-octet snap length) and samples it as an sFlow agent; the datagrams it sends
are recorded once and replayed to both collectors, so both decode the very same bytes. Every
5-tuple's sampled packet count in our JSON equals sfacctd's.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.export.peers import have
from tests.interop.pmacct import (
    Key,
    flow_samples,
    send_paced,
    sfacctd,
    sfacctd_packets,
    sfprobe_datagrams,
)
from tools import tracegen

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("pmacctd", "sfacctd"), reason="pmacct is needed")]


def _collect(datagrams: list[bytes], tmp_path: Path) -> tuple[list[dict], str]:
    out = tmp_path / "flows.json"
    proc = subprocess.Popen([sys.executable, "-m", "probe", "collect", "--listen",
                             "sflow://127.0.0.1:0", "--output", str(out)],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("listening on sflow://127.0.0.1:"), line
    send_paced(datagrams, int(line.rsplit(":", 1)[1]), every=100)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return [json.loads(x) for x in out.read_text().splitlines()], line + err


def test_sfprobe_samples_decode_as_sfacctd_decodes_them(tmp_path: Path) -> None:
    pcap = tmp_path / "trace.pcap"
    tracegen.generate(pcap, 6000, seed=5, duration_s=60)
    datagrams = sfprobe_datagrams(pcap, tmp_path, rate=2)
    assert len(datagrams) > 100
    flows, log = _collect(datagrams, tmp_path)
    sent = flow_samples(datagrams)
    with sfacctd(tmp_path, expect=sent) as (port, csv_path):
        send_paced(datagrams, port, every=2)
    theirs = sfacctd_packets(csv_path)
    assert sum(theirs.values()) == sent, "sfacctd did not count every sample (see pmacct.py)"

    samples = [f for f in flows if f.get("sample_type") != "counters"]
    ours: Counter[Key] = Counter()
    for f in samples:
        ours[(f["src_addr"], f["dst_addr"], f["src_port"], f["dst_port"], f["proto"])] += \
            f["packets"]
    assert f"messages: {len(datagrams)} (SFLOW_5 {len(datagrams)})" in log, log
    # About half the trace's packets were sampled (before tools.streams.sfprobe waited for
    # pmacctd's plugin, a loaded machine made pmacctd drop most of them at the end of file).
    assert sum(theirs.values()) > 2000, f"pmacctd sampled only {sum(theirs.values())}"
    assert ours == theirs, log
    assert {f["sampling_rate"] for f in samples} == {2}
    assert {f["sampler_address"] for f in samples} == {"192.0.2.1"}
    assert {f["etype"] for f in samples} == {0x800, 0x86DD}
    assert "malformed/refused: 0" in log and "lost datagrams 0" in log
