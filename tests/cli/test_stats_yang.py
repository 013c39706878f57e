"""``flowprobe stats --yang``: a running probe's RFC 6728 state as RFC 7951 JSON, which
``yanglint`` (libyang, an implementation independent of ours) accepts as a complete datastore
with its state data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe import capture
from probe.capture import PacketBatch
from probe.collect import Collector
from probe.config import load
from probe.config.schema import FEATURES, YANG_DIR
from probe.pipeline import Pipeline
from probe.service.commands import answer
from probe.service.control import ControlServer
from probe.service.stats import complete, pipeline_document
from tests.export.harness import UdpSink

ROOT = Path(__file__).resolve().parents[2]


class _Snapshot:
    """The capture, and a snapshot of the pipeline's statistics once it has read it all but
    before it ends: every exporter still has its transport session."""

    def __init__(self, src: capture.Source, take: Any) -> None:
        self.src, self.take = src, take
        self.live = False

    @property
    def stats(self) -> Any:
        return self.src.stats

    def batches(self, batch_size: int = 65536) -> Iterator[PacketBatch]:
        yield from self.src.batches(batch_size)
        self.take()

    def capture_stats(self) -> dict[str, int]:
        return self.src.capture_stats()

    def close(self) -> None:
        self.src.close()


def _config(tmp_path: Path, udp: int, tcp: int) -> Path:
    flow_fields = [{"name": n, "ieName": n, "isFlowKey": [None]} for n in (
        "sourceIPv4Address", "destinationIPv4Address", "protocolIdentifier")]
    flow_fields += [{"name": n, "ieName": n} for n in ("packetDeltaCount", "octetDeltaCount")]
    doc = {
        "observationPoint": [{"name": "demo", "observationDomainId": 3,
                              "offlineFile": str(ROOT / "pcaps" / "demo.pcap"),
                              "selectionProcess": ["Hashed", "Reported"]}],
        "selectionProcess": [
            {"name": "Hashed", "selector": [{"name": "half", "filterHash": {"selectedRange": [
                {"name": "lower", "min": 0, "max": 2147483647}]}}], "cache": "Flows"},
            {"name": "Reported", "selector": [{"name": "all", "selectAll": [None]}],
             "cache": "Reports"}],
        "cache": [
            {"name": "Flows", "timeoutCache": {"maxFlows": 1000, "cacheLayout": {
                "cacheField": flow_fields}}, "exportingProcess": ["Flows out"]},
            {"name": "Reports", "immediateCache": {"cacheLayout": {"cacheField": [
                {"name": "seq", "ieName": "selectionSequenceId"},
                {"name": "hdr", "ieName": "ipHeaderPacketSection", "ieLength": 32}]}},
             "exportingProcess": ["Reports out"]}],
        "exportingProcess": [
            {"name": "Flows out", "destination": [
                {"name": "udp", "udpExporter": {"destinationIPAddress": "127.0.0.1",
                                                "destinationPort": udp}},
                {"name": "file", "fileWriter": {"file": str(tmp_path / "flows.ipfix")}}]},
            {"name": "Reports out", "destination": [
                {"name": "tcp", "tcpExporter": {"destinationIPAddress": "127.0.0.1",
                                                "destinationPort": tcp}}]}],
    }
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("yanglint") is None, reason="yanglint not installed")
def test_stats_yang_is_operational_data_yanglint_accepts(tmp_path: Path) -> None:
    sink = UdpSink()
    with Collector(["tcp://127.0.0.1:0"]) as collector:
        path = _config(tmp_path, sink.port, collector.port)
        snapshot: dict[str, Any] = {}
        pipeline: Pipeline

        def take() -> None:
            snapshot.update(pipeline_document(pipeline))

        pipeline = Pipeline(load(path), fork=False,
                            open_source=lambda op: _Snapshot(capture.open(op), take))
        pipeline.run(handle_signals=False)
    sink.close()
    # the tree is the config the probe runs, not its file's content now
    path.write_text("{")
    ipfix = _stats_yang(tmp_path, pipeline, snapshot, str(path))
    assert ipfix["observationPoint"][0]["observationPointId"] == 1
    hashed, reported = ipfix["selectionProcess"]
    half = hashed["selector"][0]
    assert int(half["packetsObserved"]) == 260
    assert 0 < int(half["packetsDropped"]) < 260
    assert half["filterHash"]["outputRangeMax"] == "4294967295"
    assert hashed["selectionSequence"] == [{"observationDomainId": 3,
                                            "selectionSequenceId": "1"}]
    assert reported["selectionSequence"][0]["selectionSequenceId"] == "2"
    flows, reports = ipfix["cache"]
    assert reports["dataRecords"] == "260" and reports["meteringProcessId"] == 2
    active = flows["timeoutCache"]["activeFlows"]
    assert active > 0 and flows["timeoutCache"]["unusedCacheEntries"] == 1000 - active
    udp, file = ipfix["exportingProcess"][0]["destination"]
    session = udp["udpExporter"]["transportSession"]
    assert (session["status"], session["sourceAddress"], session["destinationAddress"],
            session["destinationPort"]) == ("active", "127.0.0.1", "127.0.0.1", sink.port)
    # the snapshot is taken with the last flows still cached and the last reports waiting to
    # fill a message: UDP has sent nothing yet; the file and the TCP session began with their
    # templates and options (the exporting process's statistics; the hash selector's, or the
    # reports' selection sequence)
    assert (session["messages"], session["templates"], session["optionsTemplates"]) == \
        ("0", 0, 0)
    writer = file["fileWriter"]
    assert (writer["templates"], writer["optionsTemplates"], writer["records"]) == (2, 2, "0")
    (tcp,) = ipfix["exportingProcess"][1]["destination"]
    tcp_session = tcp["tcpExporter"]["transportSession"]
    assert tcp_session["status"] == "active" and tcp_session["destinationPort"] == \
        collector.port and tcp_session["sourcePort"] > 0
    assert (tcp_session["templates"], tcp_session["optionsTemplates"]) == (1, 2)
    assert tcp_session["transportSessionStartTime"] >= tcp_session[
        "transportSessionDiscontinuityTime"]


def _stats_yang(tmp_path: Path, pipeline: Pipeline, snapshot: dict[str, Any], config: str
                ) -> Any:
    """``flowprobe stats --yang`` of a probe that ran ``pipeline`` (``snapshot``: its
    statistics), checked by yanglint; its ipfix container."""
    doc = complete(snapshot, config=config, started=time.time() - 61, workers=1,
                   reloads=0, reload_failures=0, last_reload_error=None)
    socket_path = tmp_path / "ctl.sock"
    server = ControlServer(str(socket_path), lambda req: answer(req, lambda: doc,
                                                                lambda: pipeline))
    try:
        r = subprocess.run([sys.executable, "-m", "probe", "stats", "--yang",
                            "--control-socket", str(socket_path)], capture_output=True,
                           text=True, timeout=60, cwd=ROOT)
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    out = tmp_path / "state.json"
    out.write_text(r.stdout)
    lint = subprocess.run(["yanglint", "-t", "data", "-p", str(YANG_DIR), "-F",
                           "ietf-ipfix-psamp:" + ",".join(FEATURES),
                           str(YANG_DIR / "ietf-ipfix-psamp@2017-01-18.yang"),
                           str(YANG_DIR / "flowprobe.yang"), str(out)],
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0 and lint.stderr == "", lint.stderr
    return json.loads(r.stdout)["ietf-ipfix-psamp:ipfix"]


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("yanglint") is None, reason="yanglint not installed")
def test_stats_yang_of_a_probe_started_from_flags(tmp_path: Path) -> None:
    """``run -i``'s and a replay's config come from flags, not a file: the probe has it."""
    from probe.config.defaults import MeterOptions, default_config
    from probe.service.stats import COMMAND_LINE

    sink = UdpSink()
    config = default_config(str(ROOT / "pcaps" / "demo.pcap"),
                            export=("udp", "127.0.0.1", sink.port),
                            options=MeterOptions(sample=2))
    pipeline = Pipeline(config, fork=False)
    pipeline.run(handle_signals=False)
    sink.close()
    ipfix = _stats_yang(tmp_path, pipeline, pipeline_document(pipeline), COMMAND_LINE)
    (sp,) = ipfix["selectionProcess"]
    assert int(sp["selector"][0]["packetsObserved"]) == 260
    assert int(sp["selector"][0]["packetsDropped"]) == 130
    (cache,) = ipfix["cache"]
    assert int(cache["dataRecords"]) > 0 and cache["timeoutCache"]["activeFlows"] == 0
    (dest,) = ipfix["exportingProcess"][0]["destination"]
    assert dest["udpExporter"]["transportSession"]["records"] == cache["dataRecords"]
