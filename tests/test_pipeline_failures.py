"""What a failing box does to the rest: nothing held is lost, and the user gets one line.

A live capture can fail in the middle of a run (the interface goes away); the flows already
metered must still reach the exporters before the error is reported. A destination whose
``maxPacketSize`` cannot hold one record is the user's configuration, so exit 2 and one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from probe.capture.batch import DecodeStats
from probe.config.defaults import default_config
from probe.errors import UserError
from probe.pipeline import Pipeline
from tests.cache.synth import packets

ROOT = Path(__file__).resolve().parents[1]


class DyingSource:
    """A live source that delivers one batch, then fails as libpcap does when a link vanishes."""

    live = True

    def __init__(self) -> None:
        self.batch = packets(500, flows=20, seed=3, span_us=1_000_000)
        self.stats = DecodeStats()

    def batches(self, batch_size: int):
        self.stats.packets_read = self.stats.packets_decoded = len(self.batch)
        yield self.batch
        raise UserError("veth9: capture failed: the interface went down")

    def capture_stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


def test_capture_failure_mid_run_exports_what_was_held_then_reports() -> None:
    got, closed = [], []
    pipe = Pipeline(default_config(), exporters=False, open_source=lambda op: DyingSource())
    pipe.attach(SimpleNamespace(export=lambda r, now: got.append(r), tick=lambda now: None,
                                close=closed.append))
    with pytest.raises(UserError, match="interface went down"):
        pipe.run(handle_signals=False)
    assert closed, "the exporters were not closed"
    assert sum(int(r.columns["_packets"].sum()) for r in got) == 500


def test_max_packet_size_too_small_for_a_record_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = json.loads((ROOT / "configs/offline-replay.json").read_text())
    dest = cfg["exportingProcess"][0]["destination"][0]["udpExporter"]
    dest["maxPacketSize"] = 60
    (tmp_path / "small.json").write_text(json.dumps(cfg))
    r = subprocess.run([sys.executable, "-m", "probe", "run", "-c", str(tmp_path / "small.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "maxPacketSize 60 is too small" in r.stderr
