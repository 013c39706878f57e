"""``flowprobe run`` service options and ``flowprobe stats`` as a user meets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probe.service.control import ControlServer
from probe.service.stats import answer

ROOT = Path(__file__).resolve().parents[2]


def _flowprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_stats_without_a_probe_is_one_line_exit_2(tmp_path: Path) -> None:
    out = _flowprobe("stats", "--control-socket", str(tmp_path / "none.sock"))
    assert out.returncode == 2
    assert out.stderr == f"no probe listening on {tmp_path / 'none.sock'} (no such socket)\n"


def test_stats_prints_text_and_json(tmp_path: Path) -> None:
    doc = {"service": {"version": "0.1.0", "pid": 7, "uptime_s": 61, "workers": 1,
                       "config": "c.json", "reloads": 0, "reload_failures": 0},
           "observation_points": [{"name": "mirror", "interface": "eth1", "packets_read": 5,
                                   "packets_decoded": 5, "ignored": {},
                                   "capture": {"received": 5, "dropped": 0, "ifdropped": 0}}],
           "selectors": [], "caches": {}, "exporting_processes": {}}
    path = tmp_path / "ctl.sock"
    server = ControlServer(str(path), lambda req: answer(req, lambda: doc))
    try:
        text = _flowprobe("stats", "--control-socket", str(path))
        js = _flowprobe("stats", "--control-socket", str(path), "--json")
    finally:
        server.close()
    assert text.returncode == 0 and js.returncode == 0
    assert text.stdout.splitlines()[0] == "flowprobe 0.1.0, pid 7, up 0:01:01, 1 capture worker(s)"
    assert "  packets received by libpcap  5" in text.stdout.splitlines()
    assert json.loads(js.stdout) == doc


def _offline_config(tmp_path: Path) -> Path:
    doc = json.loads((ROOT / "configs" / "offline-replay.json").read_text())
    doc["observationPoint"][0]["offlineFile"] = str(ROOT / "pcaps" / "demo.pcap")
    doc["exportingProcess"][0]["destination"][0]["udpExporter"]["destinationPort"] = 9
    path = tmp_path / "offline.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(("extra", "message"), [
    (["--user", "no-such-user-fp"], "--user no-such-user-fp: no such user"),
    (["--buffer-size", "1K"], "'1K': a size of at least 64K (e.g. 32M)"),
    (["--workers", "0"], "'0': a whole number of at least 1"),
    (["--metrics-port", "70000"], "'70000': a port 1..65535"),
])
def test_bad_service_options_are_one_line_errors(tmp_path: Path, extra: list[str],
                                                  message: str) -> None:
    out = _flowprobe("run", "-c", str(_offline_config(tmp_path)), *extra)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(message)


def test_pid_file_of_a_running_probe_refuses_to_start(tmp_path: Path) -> None:
    pid_file = tmp_path / "fp.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # this test process: alive
    out = _flowprobe("run", "-c", str(_offline_config(tmp_path)), "--pid-file", str(pid_file))
    assert out.returncode == 2
    assert out.stderr == f"--pid-file {pid_file}: process {os.getpid()} is running with it\n"
    assert pid_file.read_text() == f"{os.getpid()}\n"


def test_offline_run_removes_its_pid_file_and_logs_one_line_per_event(tmp_path: Path) -> None:
    pid_file = tmp_path / "fp.pid"
    out = subprocess.run([sys.executable, "-m", "probe", "run", "-c",
                          str(_offline_config(tmp_path)), "--pid-file", str(pid_file)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "JOURNAL_STREAM": "8:1234"})
    assert out.returncode == 0, out.stderr
    assert not pid_file.exists()
    logged = [line for line in out.stderr.splitlines() if line.startswith("<")]
    assert logged == ["<6>info: pipeline stopped: 0 packets received, 0 dropped by libpcap, "
                      "260 decoded, 38 flows expired, 38 records exported"]


def test_buffer_sizes() -> None:
    from probe.cli.run import parse_size

    assert parse_size("32M") == 32 << 20
    assert parse_size("512k") == 512 << 10
    assert parse_size("1GB") == 1 << 30
    assert parse_size("65536") == 65536
