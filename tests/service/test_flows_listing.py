"""``flowprobe flows``'s document: the cached flows sorted and cut as asked, with the
collector's field names, and the capture workers' lists put together."""

from __future__ import annotations

import argparse
import ipaddress
import shutil
from pathlib import Path

import pytest

from probe.config.model import Config
from probe.errors import UserError
from probe.service import flows as fl
from probe.service.commands import answer
from probe.service.control import ControlServer, request
from probe.service.workers import Supervisor
from tests.export.flows import SYS_INIT_US, batch

NOW = SYS_INIT_US + 120_000_000


def _batches() -> list:
    return [batch(40, 4, seed=1), batch(25, 6, seed=2)]


@pytest.mark.parametrize("sort", fl.SORTS)
def test_sorted_largest_first_and_cut(sort: str) -> None:
    doc = fl.listing(NOW, _batches(), sort, 10)
    assert doc["total"] == 65 and len(doc["flows"]) == 10 and doc["sort"] == sort
    values = [fl.sort_value(f, sort) for f in doc["flows"]]
    assert values == sorted(values, reverse=True)
    every = [fl.sort_value(f, sort) for f in fl.listing(NOW, _batches(), sort)["flows"]]
    assert len(every) == 65 and values == sorted(every, reverse=True)[:10]


def test_a_flow_as_the_collector_names_it() -> None:
    rb = batch(1, 6, seed=3)
    (flow,) = fl.listing(NOW, [rb])["flows"]
    c = rb.columns
    start, end, octets = int(c["_start_us"][0]), int(c["_end_us"][0]), int(c["_octets"][0])
    assert flow["src_addr"] == str(ipaddress.IPv6Address(bytes(c["sourceIPv6Address"][0])))
    assert flow["proto"] == int(c["protocolIdentifier"][0]) and flow["etype"] == 0x86DD
    assert (flow["bytes"], flow["packets"]) == (octets, int(c["_packets"][0]))
    assert (flow["time_flow_start_ns"], flow["time_flow_end_ns"]) == (start * 1000, end * 1000)
    assert flow["age_s"] == round((NOW - start) / 1e6, 3)
    assert flow["idle_s"] == round((NOW - end) / 1e6, 3)
    assert flow["rate_bps"] == round(octets * 8 / max((NOW - start) / 1e6, 1))
    # a cached flow has not ended, and its times and counters are not written twice
    assert not {"flowEndReason", "flowStartMilliseconds", "octetDeltaCount"} & set(flow)


def test_young_flow_rate_counts_at_least_a_second() -> None:
    rb = batch(1, 4, seed=4)
    start = int(rb.columns["_start_us"][0])
    (flow,) = fl.listing(start + 1000, [rb])["flows"]  # 1 ms old
    assert flow["rate_bps"] == int(rb.columns["_octets"][0]) * 8


@pytest.mark.parametrize(("sort", "limit", "problem"), [
    ("size", None, "sort must be one of bytes, packets, rate, age, not 'size'"),
    ("bytes", -1, "limit must be a whole number (0: all), not -1"),
    ("bytes", "5", "limit must be a whole number (0: all), not '5'"),
])
def test_bad_requests_are_refused(sort: object, limit: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        answer({"command": "flows", "sort": sort, "limit": limit}, dict, lambda: None)


def test_unknown_command_names_every_command(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    server = ControlServer(str(path), lambda req: answer(req, dict, lambda: None))
    try:
        with pytest.raises(UserError, match=r"unknown command 'dump' \(known: stats, ping, "
                                            r"flows, expire-all, send-templates, config\)"):
            request(str(path), "dump")
        with pytest.raises(UserError, match="not metering right now"):
            request(str(path), "flows")
    finally:
        server.close()


def test_supervisor_merges_the_workers_answers(tmp_path: Path) -> None:
    sup = Supervisor(argparse.Namespace(config=None), Config(), 2, None)
    shutil.rmtree(sup._dir)
    sup._dir = str(tmp_path)
    parts = [batch(30, 4, seed=7), batch(30, 4, seed=8)]

    def worker(i: int):
        def handle(req: dict) -> dict:
            if req["command"] == "flows":
                return {"flows": fl.listing(NOW, [parts[i]], req["sort"], req["limit"])}
            if req["command"] == "expire-all":
                return {"expired": 30}
            return {"templates": {"Export": {"Collector": "2 templates sent"}}}
        return handle

    servers = [ControlServer(sup._socket(i), worker(i)) for i in range(2)]
    try:
        got = sup.handle({"command": "flows", "sort": "packets", "limit": 7})["flows"]
        expired = sup.handle({"command": "expire-all"})
        templates = sup.handle({"command": "send-templates"})
    finally:
        for s in servers:
            s.close()
    both = fl.listing(NOW, parts, "packets", 7)
    assert got["total"] == 60 and got["flows"] == both["flows"]
    assert expired == {"expired": 60}
    assert templates == {"templates": {"Export (worker 0)": {"Collector": "2 templates sent"},
                                       "Export (worker 1)": {"Collector": "2 templates sent"}}}
    with pytest.raises(ValueError, match="no probe listening"):  # the workers are gone
        sup.handle({"command": "expire-all"})


def test_a_biflow_counts_both_directions() -> None:
    """What `flows` shows of a biflow cache (configs/biflow.json's layout, nothing ending) holding
    the demo capture: each conversation once, bytes and packets of both directions, the
    answers as reverse fields."""
    import json

    from probe.config import load_data
    from probe.pipeline import Pipeline

    root = Path(__file__).resolve().parents[2]
    doc = json.loads((root / "configs" / "biflow.json").read_text())
    for cache in doc["cache"]:  # a timeout cache that never times out: FIN ends nothing
        body = cache.pop("naturalCache")
        cache["timeoutCache"] = {**body, "activeTimeout": 0, "idleTimeout": 0}
    doc["observationPoint"][0].pop("ifName", None)
    doc["observationPoint"][0]["offlineFile"] = str(root / "pcaps" / "demo.pcap")
    pipe = Pipeline(load_data(doc), exporters=False)
    listed: list = []
    pipe._on_batch = lambda p: listed.append(p.cached_records())  # after the last batch: all
    pipe.run(handle_signals=False)
    flows = fl.listing(*listed[-1])["flows"]
    assert sum(f["packets"] for f in flows) == 260 and sum(f["bytes"] for f in flows) == 140762
    web = next(f for f in flows if 40000 in (f.get("src_port"), f.get("dst_port")))
    assert (web["packets"], web["reversePacketDeltaCount"]) == (13 + 11, 11)
    assert web["bytes"] == 567 + 12029 and web["reverseOctetDeltaCount"] == 12029
