"""Helpers shared by tests of several packages."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from probe.cache.records import RecordBatch

ROOT = Path(__file__).resolve().parents[1]
# The project's reference material sits beside the checkout (CI clones main with shared/ next to
# it), never at a fixed absolute path.
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "pcaps" / "tcpdump-tests"


class RecordingSink:
    """A pipeline sink (beside or instead of the exporters) that keeps every expired record
    batch, the tick times and the close time, so a test can judge what the cache handed on."""

    def __init__(self) -> None:
        self.records: list[RecordBatch] = []
        self.ticks: list[int] = []
        self.closed: int | None = None

    def export(self, records: RecordBatch, now_us: int) -> None:
        assert self.closed is None, "records exported after close"
        self.records.append(records)

    def tick(self, now_us: int) -> None:
        self.ticks.append(now_us)

    def close(self, now_us: int) -> None:
        self.closed = now_us


def wait_for_socket(proc: subprocess.Popen, path: Path, timeout: float = 60) -> None:
    """Until the probe ``proc`` has created its control socket ``path`` (it fails the test
    if the probe exits first or takes longer than ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no control socket {path}"
        time.sleep(0.02)
