"""``--print-config``'s writer: a Config written out in goflowd form loads back to the same
Config, for every sample, every selector type, and every flag of the built-in config."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe.config import load, load_data, normalised
from probe.config.defaults import KEY_LEVELS, MeterOptions, default_config
from probe.config.dump import goflowd_form
from probe.config.model import Config
from tests.config.helpers import SAMPLES, sample


def _same_after_round_trip(config: Config) -> dict[str, Any]:
    doc = json.loads(json.dumps(goflowd_form(config)))  # what a file holds
    assert replace(load_data(doc), source="") == replace(config, source="")
    return doc


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_config_round_trips(path: Path) -> None:
    _same_after_round_trip(load(path))


def test_every_selector_and_export_option_round_trips() -> None:
    doc = sample("sampling-hash.json")
    doc["selectionProcess"][0]["selector"] = [
        {"name": "v4", "filterMatch": {"ieName": "sourceIPv4Address", "value": "192.0.2.10"}},
        {"name": "v6", "filterMatch": {"ieName": "destinationIPv6Address",
                                       "value": "2001:db8::1"}},
        {"name": "mac", "filterMatch": {"ieName": "sourceMacAddress",
                                        "value": "02:00:5e:10:00:01"}},
        {"name": "proto", "filterMatch": {"ieId": 4, "value": "17"}},
        {"name": "ipsx", "filterHash": {"hashFunction": "IPSX", "selectedRange": [
            {"name": "all", "min": 0, "max": 65535}]}},
        {"name": "crc", "filterHash": {"hashFunction": "CRC", "initializerValue": 7,
                                       "ipPayloadOffset": 20, "ipPayloadSize": 4,
                                       "selectedRange": [{"name": "r", "min": 5, "max": 9}]}},
        {"name": "rand", "sampRandOutOfN": {"size": 1, "population": 10, "seed": 3}},
        {"name": "uni", "sampUniProb": {"probability": 0.25, "seed": 7}},
        {"name": "time", "sampTimeBased": {"timeInterval": 1000, "timeSpace": 9000}},
    ]
    doc["observationPoint"][0].update({"promiscuous": False, "snapLength": 128,
                                       "maxObservingPackets": 10})
    ep = doc["exportingProcess"][0]
    ep["exportMode"] = "ietf-ipfix-psamp:fallback"
    ep["destination"].append({"name": "TCP", "tcpExporter": {
        "ipfixVersion": 10, "destinationIPAddress": "::1", "destinationPort": 2055,
        "sendBufferSize": 65536, "rateLimit": 1000000}})
    ep["destination"][0]["udpExporter"].update({"maxPacketSize": 1400,
                                                "templateRefreshPacket": 20})
    ep["options"] = [{"name": "stats", "optionsType": "ietf-ipfix-psamp:meteringStatistics",
                      "optionsTimeout": 5000}]
    doc["collectingProcess"] = [{"name": "Relay", "udpCollector": [
        {"name": "in", "localIPAddress": ["127.0.0.1"]}], "tcpCollector": [
        {"name": "tcp-in", "localPort": 4740}], "exportingProcess": ["Export"]}]
    _same_after_round_trip(load_data(doc))


@pytest.mark.parametrize("keys", sorted(KEY_LEVELS))
@pytest.mark.parametrize("version", [10, 9, 5])
def test_the_flags_config_round_trips(keys: str, version: int) -> None:
    options = MeterOptions(keys=keys, sample=4, active_timeout=60, idle_timeout=0,
                           max_flows=1000, bpf_filter="tcp port 80", biflow=version != 5)
    # NetFlow v9 goes over UDP only (refused over TCP: its header has no length)
    config = default_config(export=("udp" if version == 9 else "tcp", "192.0.2.1", 2055),
                            version=version,
                            options=options, interfaces=("eth0", "eth1"))
    doc = _same_after_round_trip(config)
    assert [op["ifName"] for op in doc["observationPoint"]] == [["eth0"], ["eth1"]]
    cache = doc["cache"][0]["timeoutCache"]
    assert (cache["maxFlows"], cache["activeTimeout"], cache["idleTimeout"]) == (1000, 60, 0)
    keys_written = [f["ieName"] for f in cache["cacheLayout"]["cacheField"] if "isFlowKey" in f]
    assert set(keys_written) <= set(KEY_LEVELS[keys])


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("yanglint") is None, reason="yanglint not installed")
def test_yanglint_accepts_the_flags_config(tmp_path: Path) -> None:
    """The independent check: the printed config is valid RFC 6728 (in RFC 7951 form for
    yanglint, which wants the module prefixes goflowd's form leaves out)."""
    from tests.interop.test_yanglint import _yanglint

    config = default_config(export=("udp", "127.0.0.1", 2055),
                            options=MeterOptions(sample=10, bpf_filter="ip"),
                            interfaces=("eth0",))
    path = tmp_path / "printed.json"
    path.write_text(json.dumps(goflowd_form(config)))
    rfc7951 = tmp_path / "rfc7951.json"
    rfc7951.write_text(json.dumps(normalised(path)))
    res = _yanglint(rfc7951)
    assert res.returncode == 0 and "err" not in res.stderr, res.stderr
