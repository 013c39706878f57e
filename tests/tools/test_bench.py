"""The benchmark harness against the real peers it drives: softflowd into nfcapd.

What `make bench` reports is only worth something if its checks can fail, so this runs the
same code path on a small trace and also feeds it a wrong expectation."""

from __future__ import annotations

import cProfile
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pcapy
import pytest

from probe.capture.batch import DecodeStats
from probe.capture.decode import decode_batch
from tools import bench, tracegen

needs_peers = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("softflowd", "nfcapd", "nfdump")),
    reason="softflowd, nfcapd and nfdump are not installed")


def test_sizes_parse_and_print() -> None:
    assert [bench.parse_size(s) for s in ("100k", "1M", "5m", "2500")] == \
        [100_000, 1_000_000, 5_000_000, 2500]
    assert [bench.size_label(n) for n in (100_000, 1_000_000, 2500)] == ["100k", "1M", "2500"]


def test_nfdump_rows_parse_icmp_type_code_into_the_port() -> None:
    text = ("1    |   10.0.0.1|  172.16.0.2|     0|   8.0|       4|     336\n"
            "6    | 2001:db8::1| 2001:db8::2|  1234|   443|      10|    1000\n"
            "Summary: junk\n")
    assert bench.parse_nfdump(text) == [
        ((1, "10.0.0.1", "172.16.0.2", 0, 8 << 8), 4, 336),
        ((6, "2001:db8::1", "2001:db8::2", 1234, 443), 10, 1000),
    ]


def test_traces_are_cached_per_generator_version_and_stale_ones_removed(tmp_path: Path) -> None:
    stale = tmp_path / "trace-500-s1-0000000000.pcap"
    stale.write_bytes(b"old")
    other_seed = tmp_path / "trace-500-s10-0000000000.pcap"
    other_seed.write_bytes(b"keep")
    first = bench.get_trace(500, 1, tmp_path)
    assert first.gen_seconds is not None and first.path.exists()
    assert not stale.exists() and other_seed.exists()
    again = bench.get_trace(500, 1, tmp_path)
    assert again.gen_seconds is None and again.path == first.path
    assert int(again.totals["packets"].sum()) == 500


def test_acceptance_lines_follow_issue_6() -> None:
    def row(trace: str, system: str, packets: int, wall: float, rss: float = 10.0,
            ratio: float | None = None) -> dict:
        return {"trace": trace, "system": system, "packets": packets, "ratio": ratio,
                "median": {"wall_s": wall, "cpu_s": wall, "maxrss_mb": rss}}
    rows = [row("100k", "softflowd", 100_000, 0.1), row("100k", "flowprobe", 100_000, 1.0),
            row("1M", "softflowd", 1_000_000, 1.0), row("1M", "flowprobe", 1_000_000, 0.8,
                                                         rss=160, ratio=0.8),
            row("5M", "softflowd", 5_000_000, 5.0), row("5M", "flowprobe", 5_000_000, 6.5)]
    lines = bench.acceptance(rows, startup_s=0.5)
    assert lines[0].startswith("1M: flowprobe/softflowd wall 0.80x")
    assert "<= 1.0x, stretch 0.5x): met" in lines[0] and "160 MB (<= 150 MB): NOT met" in lines[0]
    assert lines[1] == "softflowd: time per packet 5M / 100k = 1.00 (<= 1.2): reference"
    # 6.5 s / 5M vs 1.0 s / 100k = 0.13; without 0.5 s start-up: 6.0/5M vs 0.5/100k = 0.24
    assert lines[2] == ("flowprobe: time per packet 5M / 100k = 0.13 (<= 1.2): met; "
                        "without start-up 0.24")


def test_compare_reports_each_kind_of_difference() -> None:
    a, b, c, d = ((6, "10.0.0.1", "10.0.0.2", p, 80) for p in (1, 2, 3, 4))
    want = {a: (5, 500), b: (1, 40), c: (2, 80)}
    assert bench.compare(dict(want), want)["ok"]
    got = {a: (5, 506), b: (2, 80), d: (1, 40)}  # a: octets, b: packets, c missing, d extra
    r = bench.compare(got, want)
    assert not r["ok"]
    assert (r["missing"], r["extra"], r["packet_mismatch"], r["octet_mismatch"]) == (1, 1, 1, 2)
    assert r["packets_got"] == 8 and r["flows_got"] == 3 and r["flows_expected"] == 3


def test_exporters_own_record_counts_are_read_from_their_logs() -> None:
    soft = "Flows expired: 633 (0 forced)\nFlows exported: 633 (1152 records) in 42 packets\n"
    assert bench.softflowd_records(soft) == 1152
    probe = "cache A\n  flows created  7\n  records             5\ncache B\n  records 2\n"
    assert bench.flowprobe_records(probe) == 7
    assert bench.flowprobe_records("Traceback ...") is None


def test_profile_time_goes_to_the_box_that_spent_it(tmp_path: Path) -> None:
    """numpy work inside the decoder is the capture box's time, not "other"."""
    pcap = tmp_path / "t.pcap"
    tracegen.generate(pcap, 3000, seed=1)
    data, packed = pcapy.open_offline(str(pcap)).next_batch(3000)
    meta = np.frombuffer(packed, dtype=np.uint32).reshape(-1, 4)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        decode_batch(data, meta, 1, DecodeStats())
    prof.disable()
    prof.dump_stats(tmp_path / "p.prof")
    boxes = bench.time_by_box(tmp_path / "p.prof")
    total = sum(boxes.values())
    assert boxes["probe.capture"] > 0.9 * total, boxes


@pytest.mark.interop
@needs_peers
def test_softflowd_totals_match_the_generator_and_a_wrong_expectation_fails(
        tmp_path: Path) -> None:
    pcap = tmp_path / "t.pcap"
    summary = tracegen.generate(pcap, 5000, seed=5, totals=True)
    trace = bench.Trace(pcap, summary, summary["totals"], None)
    want = bench.expected(trace.totals, "l2_octets")
    run = bench.run_once("softflowd", trace, want, tmp_path, keep=False)
    assert run.exit_code == 0
    assert run.check["ok"], run.check
    assert run.check["packets_got"] == 5000
    assert not run.check["loss"]
    assert run.collector["records_sent"] == run.collector["Flows"] == len(want)
    assert run.wall_s > 0 and run.maxrss_kb > 0
    # softflowd counts padding and the untruncated frame: IP total lengths are not what it sends.
    wrong = bench.expected(trace.totals, "ip_octets")
    assert wrong != want
    run = bench.run_once("softflowd", trace, wrong, tmp_path, keep=False)
    assert not run.check["ok"] and run.check["octet_mismatch"] > 0
    assert run.check["packet_mismatch"] == 0


def test_cpu_ticks_see_busy_time_pass() -> None:
    """The busy-machine warning reads all CPUs' busy and steal time from /proc/stat."""
    before = bench._cpu_ticks()
    assert before is not None and before[0] > 0 and before[1] >= 0
    end = time.process_time() + 0.2
    while time.process_time() < end:  # burn 0.2 s of CPU
        pass
    after = bench._cpu_ticks()
    assert after is not None
    assert (after[0] - before[0]) / os.sysconf("SC_CLK_TCK") >= 0.15


def test_the_run_rows_meter_what_the_replay_row_meters(tmp_path: Path) -> None:
    """``flowprobe run -c`` and ``replay -c`` read a config file with replay's built-in layout,
    cache size and timeouts, so the rows differ only in the command's path."""
    from probe.config import load_data
    from probe.config.defaults import default_config

    trace = tmp_path / "t.pcap"
    config = load_data(bench.config_doc(trace=trace, port=4739))
    (cache,) = config.caches
    (builtin,) = default_config(str(trace), export=("udp", "127.0.0.1", 4739)).caches
    assert (cache.layout, cache.max_flows, cache.active_timeout, cache.idle_timeout) == \
        (builtin.layout, builtin.max_flows, builtin.active_timeout, builtin.idle_timeout)
    (op,) = config.observation_points
    assert op.offline_file == str(trace)
    (dest,) = cache.exporting_processes[0].destinations
    assert (dest.transport, dest.ipfix_version, dest.destination_port) == ("udp", 10, 4739)
