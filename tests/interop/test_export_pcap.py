"""From a real capture to nfdump: every flow's start and end as nfdump prints them are its first
and last packet's times to the millisecond, and nfdump's totals are the capture's.

The flows come from a simple dpkt meter (tests/export/pcapmeter.py) so this checks the
exporter on real packet times; the later tests run the real pipeline and ``flowprobe replay``
against the same expectations.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from probe.config.defaults import default_config
from probe.export import open_exporting_process
from tests.export.expect import nfdump_row
from tests.export.pcapmeter import meter, record_batches
from tests.export.peers import free_port, have, nfcapd, nfdump_flows, nfdump_info
from tests.helpers import RecordingSink

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("nfcapd", "nfdump"), reason="needs nfcapd and nfdump")]

PCAP = Path(__file__).resolve().parents[2] / "pcaps" / "demo.pcap"


def _expected(version: int) -> tuple[list[tuple], int, int]:
    flows = meter(PCAP)
    rows = []
    for k, v in flows.items():
        if version == 5 and k[0] == 6:
            continue
        icmp = k[3] in (1, 58)
        rows.append((str(ipaddress.ip_address(k[1])), str(ipaddress.ip_address(k[2])), k[3],
                     k[4], k[5], k[6] if icmp else 0, v[0] // 1000, v[1] // 1000, v[2], v[3],
                     v[4] & 0xFF))
    return sorted(rows), sum(r[8] for r in rows), sum(r[9] for r in rows)


def _check(nfdir: Path, version: int) -> None:
    expected, packets, octets = _expected(version)
    info = nfdump_info(nfdir)
    assert info["Sequence failures"] == 0
    assert (info["Flows"], info["Packets"], info["Bytes"]) == (len(expected), packets, octets)
    assert sorted(nfdump_row(f) for f in nfdump_flows(nfdir)) == expected


@pytest.mark.parametrize("version", [10, 9, 5])
def test_pcap_flow_times_in_nfdump_are_packet_times(tmp_path: Path, version: int) -> None:
    flows = meter(PCAP)
    sys_init = min(v[0] for v in flows.values())  # offline: the first packet's time
    batches = record_batches(flows, sys_init)
    last = max(v[1] for v in flows.values())
    port = free_port()
    with nfcapd(tmp_path / "nf", port) as nfdir:
        cfg = default_config(export=("udp", "127.0.0.1", port), version=version)
        rt = open_exporting_process(cfg.exporting_processes[0], cfg, sys_init)
        for b in batches:
            rt.export(b, last)
        rt.close(last)
    _check(nfdir, version)


@pytest.mark.parametrize("version", [10, 9, 5])
def test_metering_pipeline_to_nfcapd(tmp_path: Path, version: int) -> None:
    """The real pipeline (capture, selection, cache) feeding the exporter, offline."""
    from probe.config.defaults import default_config as replay_config
    from probe.pipeline import Pipeline

    port = free_port()
    with nfcapd(tmp_path / "nf", port) as nfdir:
        cfg = replay_config(str(PCAP), export=("udp", "127.0.0.1", port), version=version)
        Pipeline(cfg).run(handle_signals=False)
    _check(nfdir, version)


@pytest.mark.parametrize("version", [10, 9, 5])
def test_flowprobe_replay_to_nfcapd(tmp_path: Path, version: int) -> None:
    port = free_port()
    with nfcapd(tmp_path / "nf", port) as nfdir:
        r = subprocess.run([sys.executable, "-m", "probe", "replay", str(PCAP), "--export",
                            f"udp://127.0.0.1:{port}", "--version", str(version)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    _check(nfdir, version)


@pytest.mark.skipif(not have("dumpcap", "tshark"), reason="needs dumpcap and tshark")
@pytest.mark.parametrize("version", [10, 9, 5])
def test_tshark_records_equal_what_the_cache_expired(tmp_path: Path, version: int) -> None:
    from probe.config.defaults import default_config as replay_config
    from probe.pipeline import Pipeline
    from tests.export.expect import batch_rows, tshark_row
    from tests.export.peers import dumpcap, tshark_expert, tshark_flows, udp_sink

    recorder = RecordingSink()
    cap = tmp_path / "replay.pcap"
    with udp_sink() as sink:
        port = sink.getsockname()[1]
        with dumpcap(cap, f"udp port {port}"):
            cfg = replay_config(str(PCAP), export=("udp", "127.0.0.1", port), version=version)
            pipeline = Pipeline(cfg)
            pipeline.attach(recorder)
            pipeline.run(handle_signals=False)
    decode_as = f"udp.port=={port},cflow"
    expert = tshark_expert(cap, decode_as)
    assert "Warns" not in expert and "Errors" not in expert, expert
    v5 = version == 5
    expected = sorted(r for b in recorder.records if not (v5 and b.ip_version == 6)
                      for r in batch_rows(b, v5))
    got = sorted(tshark_row(f) for f in tshark_flows(cap, decode_as)
                 if "cflow.srcaddr" in f or "cflow.srcaddrv6" in f)
    assert expected and got == expected
