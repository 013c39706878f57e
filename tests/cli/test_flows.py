"""``flowprobe flows``, ``expire-all`` and ``send-templates`` as a user runs them against a
replay that answers on ``--control-socket``: what the listing shows, that expiring every flow
mid-replay loses nothing, and one-line errors.

The replay must still be running while the commands ask: it meters a generated trace in
batches of a few packets (``--batch-size``; records do not depend on it), which takes seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.collect.collector import Collector
from tests.helpers import wait_for_socket
from tests.interop.test_live_veth import _totals
from tests.interop.test_softflowd_totals import ours

ROOT = Path(__file__).resolve().parents[2]
PACKETS = 60_000


def flowprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "trace.pcap"
    subprocess.run([sys.executable, "-m", "tools.tracegen", "--packets", str(PACKETS),
                    str(path)], cwd=ROOT, check=True, capture_output=True)
    return path


class SlowReplay:
    def __init__(self, trace: Path, sock: Path, export: str, *extra: str) -> None:
        self.sock = sock
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "replay", str(trace), "--batch-size", "8",
             "--control-socket", str(sock), "--export", export, *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_socket(self.proc, sock)

    def ask(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = flowprobe(*args, "--control-socket", str(self.sock))
        assert self.proc.poll() is None, "the replay ended too soon for this test"
        return out

    def wait(self) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err
        return out, err


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(["udp://127.0.0.1:0"]) as c:
        yield c


def test_flows_while_a_replay_runs(tmp_path: Path, trace: Path, collector: Collector) -> None:
    replay = SlowReplay(trace, tmp_path / "r.sock", f"udp://127.0.0.1:{collector.port}")
    listed = replay.ask("flows", "--json")
    text = replay.ask("flows", "--sort", "packets", "-n", "5")
    stats = replay.ask("stats", "--json")
    expired = replay.ask("expire-all")
    templates = replay.ask("send-templates")  # records (and so templates) went out by now
    replay.wait()
    assert not (tmp_path / "r.sock").exists()  # removed when the replay ends

    assert listed.returncode == 0, listed.stderr
    flows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert flows and all(f["cache"] == "Flow cache" for f in flows)
    sizes = [f["bytes"] for f in flows]
    assert sizes == sorted(sizes, reverse=True)
    assert {"src_addr", "dst_addr", "proto", "packets", "bytes", "age_s", "idle_s",
            "rate_bps", "time_flow_start_ns"} <= set(flows[0])

    lines = text.stdout.splitlines()
    assert lines[0].split() == ["age", "s", "idle", "s", "proto", "src", "dst", "flags",
                                "packets", "bytes", "bit/s"]
    assert len(lines) == 7 and lines[-1].endswith("flows cached, 5 shown, largest packets first")
    packets = [int(line.split()[-3]) for line in lines[1:-1]]
    assert packets == sorted(packets, reverse=True)

    assert templates.stdout.startswith("exporting process export, destination udp://")
    assert templates.stdout.rstrip().endswith("templates sent")
    assert json.loads(stats.stdout)["caches"]["Flow cache"]["active"] > 0
    n = int(expired.stdout.split()[0])
    assert n > 0 and expired.stdout.endswith("flows ended (forced end) and sent to the "
                                             "exporting processes\n")

    # the flows ended early are records like any other: per 5-tuple nothing is lost
    collector.wait_idle()
    collector.stop()
    records = list(collector.records())
    assert _totals(records) == ours(trace)
    assert sum(r["flowEndReason"] == 4 for r in records) >= n


def test_no_probe_is_one_line_exit_2(tmp_path: Path) -> None:
    for command in ("flows", "expire-all", "send-templates"):
        out = flowprobe(command, "--control-socket", str(tmp_path / "none.sock"))
        assert out.returncode == 2
        assert out.stderr == f"no probe listening on {tmp_path / 'none.sock'} (no such socket)\n"
    out = flowprobe("flows", "--sort", "size")
    assert out.returncode == 2 and "invalid choice: 'size'" in out.stderr


def test_an_offline_run_answers_when_given_a_socket(tmp_path: Path, trace: Path,
                                                    collector: Collector) -> None:
    printed = flowprobe("replay", str(trace), "--export", f"udp://127.0.0.1:{collector.port}",
                        "--print-config")
    cfg = tmp_path / "offline.json"
    cfg.write_text(printed.stdout)
    sock = tmp_path / "run.sock"
    run = subprocess.Popen([sys.executable, "-m", "probe", "run", "-c", str(cfg),
                            "--batch-size", "8", "--control-socket", str(sock)],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(run, sock)
        listed = flowprobe("flows", "-n", "3", "--json", "--control-socket", str(sock))
        assert run.poll() is None, "the run ended too soon for this test"
    finally:
        _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 3
    assert "flows: 3 of " in listed.stderr
