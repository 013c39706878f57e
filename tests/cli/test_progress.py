"""The progress line of a long replay or offline run: on a terminal (a pseudo-terminal here)
it shows bytes read, packets/s, flows cached and the time left, and is blanked before anything
else is printed; piped, or with -q, there is none."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from probe.output import ProgressLine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "trace.pcap"
    subprocess.run([sys.executable, "-m", "tools.tracegen", "--packets", "60000", str(path)],
                   cwd=ROOT, check=True, capture_output=True)
    return path


def on_terminal(*args: str) -> str:
    """stderr of ``flowprobe ARGS`` run with stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "probe", *args], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, out
    return out.decode()


def _lines(stream: str) -> list[str]:
    """What the terminal showed, line by line rewritten: each progress line once."""
    return [part.strip() for part in stream.replace("\r\n", "\n").split("\r") if part.strip()]


def _check_progress(stream: str, size: int) -> str:
    shown = [ln for ln in _lines(stream) if "packets/s" in ln]
    assert shown, stream
    for line in shown:  # "5.7 MB of 7.6 MB (75%), 178k packets/s, 2228 flows cached, ETA 0:01"
        assert f" of {size / 1e6:.1f} MB (" in line and "flows cached" in line, line
    assert any("ETA " in ln for ln in shown)
    # blanked before the rest: after the last progress line come spaces and a carriage return
    last = stream.rindex("packets/s")
    tail = stream[last:]
    blank = tail.index("\r")
    assert set(tail[blank + 1:tail.index("\r", blank + 1)]) == {" "}
    return stream[stream.index("\r", stream.index("\r", last) + 1) + 1:]


def test_replay_on_a_terminal_shows_progress_then_blanks_it(trace: Path) -> None:
    rest = _check_progress(on_terminal("replay", str(trace), "--batch-size", "64",
                                       "--export", "udp://127.0.0.1:9"), trace.stat().st_size)
    assert "packets/s" not in rest


def test_loopback_replay_shows_progress_before_its_summary(trace: Path) -> None:
    rest = _check_progress(on_terminal("replay", str(trace), "--batch-size", "64"),
                           trace.stat().st_size)
    assert rest.startswith("observation point replay")  # the summary, on a clean line


def test_offline_run_shows_progress_before_its_log_line(trace: Path, tmp_path: Path) -> None:
    printed = subprocess.run([sys.executable, "-m", "probe", "replay", str(trace), "--export",
                              "udp://127.0.0.1:9", "--print-config"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
    cfg = tmp_path / "offline.json"
    cfg.write_text(printed.stdout)
    rest = _check_progress(on_terminal("run", "-c", str(cfg), "--batch-size", "64"),
                           trace.stat().st_size)
    assert "pipeline stopped" in rest.splitlines()[0]


def test_no_progress_when_piped_or_quiet(trace: Path) -> None:
    piped = subprocess.run([sys.executable, "-m", "probe", "replay", str(trace), "--batch-size",
                            "64"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "packets/s" not in piped.stderr and "\r" not in piped.stderr
    assert "packets/s" not in on_terminal("replay", str(trace), "--batch-size", "64", "-q")


def test_the_line_itself() -> None:
    assert ProgressLine.text(50_000_000, 100_000_000, 12, 2.0, 25_000_000, 3000) == \
        "50.0 MB of 100.0 MB (50%), 1.5k packets/s, 12 flows cached, ETA 0:04"
    assert ProgressLine.text(4096, None, 0, 0.0, 0, 0) == "4.1 kB read, 0 packets/s, " \
        "0 flows cached"
    out = io.StringIO()
    line = ProgressLine(out, width=lambda: 21)
    line.show("a long line that the terminal would wrap")
    line.show("short")
    line.clear()
    assert out.getvalue() == ("\ra long line that the" + "\rshort" + " " * 15
                              + "\r" + " " * 5 + "\r")
