"""SIGHUP reload logic, driven with offline configs (no capture privileges needed)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from probe.collect.collector import Collector
from probe.config import load
from probe.service.runner import Service

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, pcap: str, port: int) -> Path:
    doc = json.loads((ROOT / "configs" / "offline-replay.json").read_text())
    doc["observationPoint"][0]["offlineFile"] = pcap
    doc["exportingProcess"][0]["destination"][0]["udpExporter"]["destinationPort"] = port
    path.write_text(json.dumps(doc))
    return path


class _Running:
    """Stands in for a running pipeline: records whether the reload stopped it."""

    stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_bad_config_keeps_the_running_one(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                          ) -> None:
    cfg = _write(tmp_path / "c.json", str(ROOT / "pcaps" / "demo.pcap"), 9)
    svc = Service(str(cfg), load(cfg))
    running = _Running()
    svc._pipeline = running
    cfg.write_text('{"cache": [{"name": "Flows", "timeoutCache": {"activeTimeout": "soon"}}]}')
    with caplog.at_level(logging.INFO):
        assert svc.reload() is False
    assert not running.stopped and svc._pending is None
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"reload: {cfg}: ")
    assert errors[0].endswith("; keeping the running config") and "\n" not in errors[0]
    svc._pipeline = None
    assert svc.snapshot()["service"]["reload_failures"] == 1
    assert "activeTimeout" in svc.snapshot()["service"]["last_reload_error"]


def test_good_config_replaces_the_pipeline_and_counters_carry_on(tmp_path: Path) -> None:
    demo, frag = str(ROOT / "pcaps" / "demo.pcap"), str(ROOT / "pcaps" / "ipv4-frag.pcap")
    with Collector(["udp://127.0.0.1:0"]) as collector:
        cfg = _write(tmp_path / "c.json", demo, collector.port)
        svc = Service(str(cfg), load(cfg))
        _write(cfg, frag, collector.port)
        assert svc.reload() is True  # validated; the first pipeline stops at once, then B runs
        assert svc.run() == 0
        collector.wait_idle()
        collector.stop()
        flows = list(collector.records())
    doc = svc.snapshot()
    assert doc["service"]["reloads"] == 1
    # A ran to the end of its file, then B: counters are totals over both pipelines
    (point,) = doc["observation_points"]
    assert point["interface"] == frag  # the running config's
    frag_packets = point["packets_decoded"] - 260
    assert frag_packets > 0
    assert sum(int(f["packets"]) for f in flows) == 260 + frag_packets
    assert doc["caches"]["Flow cache"]["records"] == len(flows)
    assert doc["caches"]["Flow cache"]["active"] == 0


def test_new_config_that_cannot_start_falls_back_to_the_old(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    demo = str(ROOT / "pcaps" / "demo.pcap")
    with Collector(["udp://127.0.0.1:0"]) as collector:
        cfg = _write(tmp_path / "c.json", demo, collector.port)
        svc = Service(str(cfg), load(cfg))
        _write(cfg, str(tmp_path / "gone.pcap"), collector.port)  # valid, but cannot open
        (tmp_path / "gone.pcap").write_bytes(b"")
        cfg_ok = svc.reload()
        (tmp_path / "gone.pcap").unlink()
        with caplog.at_level(logging.INFO):
            status = svc.run()
        collector.wait_idle()
        collector.stop()
        flows = list(collector.records())
    assert cfg_ok and status == 0
    doc = svc.snapshot()
    assert doc["service"]["reloads"] == 0 and doc["service"]["reload_failures"] == 1
    assert "gone.pcap" in doc["service"]["last_reload_error"]
    assert any("starting the previous one again" in r.getMessage() for r in caplog.records)
    # the old config ran to the end of its file before the switch and again after the
    # failed start: every flow of both runs reached the collector
    assert doc["observation_points"][0]["packets_decoded"] == 2 * 260
    assert sum(int(f["packets"]) for f in flows) == 2 * 260


def test_a_reload_keeps_the_file_the_old_config_wrote(tmp_path: Path) -> None:
    """fileWriter: each config's session is a whole IPFIX File; the old one moves to PATH.1,
    and a strict reader takes both without a warning (appended, the new session's sequence
    numbers would restart inside the old file)."""
    import shutil
    import subprocess

    from tests.export.wire import Decoder, split_stream

    out = tmp_path / "flows.ipfix"

    def write(pcap: str) -> Path:
        doc = json.loads((ROOT / "configs" / "ipfix-file.json").read_text())
        doc["observationPoint"][0]["offlineFile"] = pcap
        doc["exportingProcess"][0]["destination"][0]["fileWriter"]["file"] = f"file://{out}"
        doc.pop("collectingProcess")
        cfg = tmp_path / "c.json"
        cfg.write_text(json.dumps(doc))
        return cfg

    out.write_bytes(b"not ours")  # a file from before this process: overwritten, as by replay
    cfg = write(str(ROOT / "pcaps" / "demo.pcap"))
    svc = Service(str(cfg), load(cfg))
    write(str(ROOT / "pcaps" / "ipv4-frag.pcap"))
    assert svc.reload() is True
    assert svc.run() == 0
    assert sorted(p.name for p in tmp_path.glob("flows.ipfix*")) == ["flows.ipfix",
                                                                      "flows.ipfix.1"]
    records = 0
    for path in (out.with_name("flows.ipfix.1"), out):
        d = Decoder()
        msgs = [d.decode(m) for m in split_stream(path.read_bytes())]
        assert msgs[0].header["seq"] == 0 and msgs[0].templates  # a session from its start
        records += sum(len(m.data) for m in msgs)
        if shutil.which("ipfixDump"):
            dump = subprocess.run(["ipfixDump", "-i", str(path)], capture_output=True,
                                  text=True, timeout=60, check=True)
            assert dump.stderr == ""
    assert records == svc.snapshot()["caches"]["Flow cache"]["records"] > 0
