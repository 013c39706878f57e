"""The workers' supervisor answers with the sum over its workers' control sockets."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from probe.config.model import Config
from probe.service.control import ControlServer
from probe.service.stats import answer
from probe.service.workers import Supervisor


def _worker_doc(received: int, records: int) -> dict:
    return {"observation_points": [{"name": "mirror", "interface": "eth1",
                                    "packets_read": received, "packets_decoded": received,
                                    "ignored": {}, "capture": {"received": received,
                                                               "dropped": 0, "ifdropped": 0}}],
            "selectors": [], "caches": {"Flows": {"active": 1, "records": records,
                                                  "expired": {"4": records}}},
            "exporting_processes": {"Export": {"c": {"records": records, "messages": 1}}},
            "service": {"pid": 1}}


def test_snapshot_sums_the_workers_and_skips_a_missing_one(tmp_path: Path) -> None:
    args = argparse.Namespace(config="c.json")
    sup = Supervisor(args, Config(), 3, None)
    shutil.rmtree(sup._dir)
    sup._dir = str(tmp_path)
    servers = [ControlServer(sup._socket(i), lambda req, d=doc: answer(req, lambda: d))
               for i, doc in enumerate([_worker_doc(600, 30), _worker_doc(400, 20)])]
    try:  # worker 2 has no socket (starting, or gone)
        doc = sup.snapshot()
    finally:
        for s in servers:
            s.close()
    assert doc["observation_points"][0]["capture"]["received"] == 1000
    assert doc["caches"]["Flows"] == {"active": 2, "records": 50, "expired": {"4": 50}}
    assert doc["exporting_processes"]["Export"]["c"] == {"records": 50, "messages": 2}
    assert doc["service"]["workers"] == 3 and doc["service"]["config"] == "c.json"
