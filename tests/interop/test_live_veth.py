"""Live capture: ``flowprobe run`` on a veth end sees what tcpreplay sends from a namespace.

The test makes a veth pair with one end in a network namespace of its own, replays a pcap into
that end with tcpreplay, meters the other end with ``flowprobe run`` exporting IPFIX to the
bundled collector on loopback, stops the probe with SIGTERM, and expects the per-5-tuple totals
of the offline replay of the same pcap. It always removes the namespace and the veth pair.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.interop.test_softflowd_totals import ours
from tools.bench_live import netns_problem, sockets_on, veth_into_netns

ROOT = Path(__file__).resolve().parents[2]
PCAP = ROOT / "pcaps" / "demo.pcap"

pytestmark = [pytest.mark.live, pytest.mark.interop]


def _config(if_name: str, port: int) -> dict:
    keys = ["ipVersion", "sourceIPv4Address", "destinationIPv4Address", "sourceIPv6Address",
            "destinationIPv6Address", "protocolIdentifier", "sourceTransportPort",
            "destinationTransportPort", "icmpTypeCodeIPv4", "icmpTypeCodeIPv6"]
    nonkeys = ["octetDeltaCount", "packetDeltaCount", "flowStartMilliseconds",
               "flowEndMilliseconds", "flowEndReason"]
    fields = [{"name": f"Field {i}", "ieName": n, "isFlowKey": [None]}
              for i, n in enumerate(keys, 1)]
    fields += [{"name": f"Field {i}", "ieName": n}
               for i, n in enumerate(nonkeys, len(keys) + 1)]
    return {
        "observationPoint": [{"name": "veth", "observationDomainId": 1, "ifName": [if_name],
                              "selectionProcess": ["All"]}],
        "selectionProcess": [{"name": "All", "selector": [{"name": "all", "selectAll": [None]}],
                              "cache": "Flows"}],
        "cache": [{"name": "Flows", "timeoutCache": {
            "maxFlows": 65536, "activeTimeout": 1800, "idleTimeout": 300,
            "cacheLayout": {"cacheField": fields}}, "exportingProcess": ["Export"]}],
        "exportingProcess": [{"name": "Export", "destination": [{"name": "Collector",
            "udpExporter": {"ipfixVersion": 10, "destinationIPAddress": "127.0.0.1",
                            "destinationPort": port}}]}],
    }


def _totals(flows: list[dict]) -> Counter:
    t: Counter = Counter()
    for f in flows:
        proto = int(f["proto"])
        sport, dport = int(f.get("src_port") or 0), int(f.get("dst_port") or 0)
        if proto in (1, 58):
            sport, dport = 0, int(f.get("icmp_type") or 0) * 256 + int(f.get("icmp_code") or 0)
        key = (proto, str(f["src_addr"]), str(f["dst_addr"]), sport, dport)
        t[(*key, "p")] += int(f["packets"])
        t[(*key, "b")] += int(f["bytes"])
    return t


def test_live_capture_equals_offline_replay(tmp_path: Path) -> None:
    why = netns_problem()
    if why:
        pytest.skip(why)
    from probe.collect.collector import Collector

    with veth_into_netns(f"l{os.getpid() % 10000}") as (ns, ours_if, peer_if):
        with Collector(["udp://127.0.0.1:0"]) as collector:
            cfg = tmp_path / "live.json"
            cfg.write_text(json.dumps(_config(ours_if, collector.port)))
            probe = subprocess.Popen([sys.executable, "-m", "probe", "run", "-c", str(cfg),
                                      "--control-socket", "none"],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
            try:
                deadline = time.monotonic() + 60  # loads its config, opens the capture
                while not sockets_on(ours_if):
                    assert probe.poll() is None, probe.communicate()[1]
                    assert time.monotonic() < deadline, "the probe never opened the capture"
                    time.sleep(0.05)
                subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", peer_if,
                                "--mbps=10", str(PCAP)], check=True, capture_output=True)
                time.sleep(0.5)
                probe.send_signal(signal.SIGTERM)
                _, err = probe.communicate(timeout=30)
            finally:
                if probe.poll() is None:
                    probe.kill()
                    probe.wait()
            assert probe.returncode == 0, err
            collector.wait_idle()
            collector.stop()
            live = _totals(list(collector.records()))
        offline = ours(PCAP)
        assert offline and live == offline
