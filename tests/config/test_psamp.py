"""PSAMP packet reports in the config: which caches may carry them, section lengths, what the
export versions can carry, and digestOutput paired with digestHashValue (RFC 6728)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from probe.config import load_data
from probe.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
C = "/ipfix/cache[name='Packet reports']/immediateCache/cacheLayout"


def doc() -> dict[str, Any]:
    return json.loads((ROOT / "configs" / "psamp-reports.json").read_text())


def fields(d: dict[str, Any]) -> list[dict[str, Any]]:
    return d["cache"][0]["immediateCache"]["cacheLayout"]["cacheField"]


def problems(d: dict[str, Any]) -> list[str]:
    with pytest.raises(UserError) as e:
        load_data(d)
    return [p.removeprefix("<config>: ") for p in e.value.problems]


def test_sample_loads_with_the_section_lengths() -> None:
    d = doc()
    fields(d).append({"name": "Frame", "ieName": "dataLinkFrameSection"})  # device default
    fields(d)[:] = [f for f in fields(d) if f["ieName"] != "sectionExportedOctets"]
    (cache,) = load_data(d).caches
    assert {f.ie_name: f.ie_length for f in cache.layout.fields if f.ie_length} == {
        "ipHeaderPacketSection": 128, "dataLinkFrameSection": 64}


@pytest.mark.parametrize(("length", "message"), [
    (65535, "ipHeaderPacketSection is sent with a fixed length (zero-padded; "
            "sectionExportedOctets says how much is real): give its length, 1..1024, not "
            "65535 (variable)"),
    (2000, "2000 is not a section length flowprobe can report (1..1024 octets)"),
])
def test_section_lengths(length: int, message: str) -> None:
    d = doc()
    fields(d)[-1]["ieLength"] = length
    assert problems(d) == [f"{C}/cacheField[name='Header']/ieLength: {message}"]


def test_reports_only_from_an_immediate_cache() -> None:
    d = doc()
    cache = d["cache"][0]
    layout = cache.pop("immediateCache")["cacheLayout"]
    layout["cacheField"].insert(0, {"name": "Key", "ieName": "sourceIPv4Address",
                                    "isFlowKey": [None]})
    cache["timeoutCache"] = {"cacheLayout": layout}
    got = problems(d)
    assert got[0] == ("/ipfix/cache[name='Packet reports']/timeoutCache/cacheLayout/cacheField"
                      "[name='Sequence']: selectionSequenceId is part of a PSAMP packet report "
                      "(RFC 5476): only an immediateCache, which reports each packet, carries it")
    assert len(got) == 6  # each report field


def test_section_exported_octets_needs_one_section() -> None:
    d = doc()
    fields(d).append({"name": "Payload", "ieName": "ipPayloadPacketSection", "ieLength": 16})
    assert problems(d) == [f"{C}: sectionExportedOctets says how many octets of the one packet "
                           "section are real; this layout has 2 sections"]


def test_netflow_v9_cannot_carry_packet_reports() -> None:
    d = doc()
    d["exportingProcess"][0]["destination"][0]["udpExporter"]["ipfixVersion"] = 9
    got = problems(d)
    assert len(got) == 6 and got[-1] == (
        f"{C}/cacheField[name='Header']: ipHeaderPacketSection is part of a PSAMP packet report, "
        "which is IPFIX (RFC 5476); NetFlow v9 collectors do not know it (exportingProcess "
        "'IPFIX' destination 'Collector' is version 9)")


def _digest(d: dict[str, Any], output: bool, field: bool) -> dict[str, Any]:
    d["selectionProcess"][0]["selector"].append({"name": "Hash", "filterHash": {
        "digestOutput": output, "selectedRange": [{"name": "All", "min": 0,
                                                   "max": 4294967295}]}})
    if field:
        fields(d).append({"name": "Digest", "ieName": "digestHashValue"})
    return d


def test_digest_output_goes_with_digest_hash_value() -> None:
    sp = "/ipfix/selectionProcess[name='Every 10th']"
    (cache,) = load_data(_digest(doc(), True, True)).caches
    assert "digestHashValue" in cache.layout.nonkey_names
    assert problems(_digest(doc(), True, False)) == [
        f"{sp}/selector[name='Hash']/filterHash/digestOutput: the digest goes into the packet "
        "reports' digestHashValue, and cache 'Packet reports' has none in its layout"]
    assert problems(_digest(doc(), False, True)) == [
        "/ipfix/cache[name='Packet reports']: digestHashValue is the hash of a filterHash with "
        "digestOutput true, and selectionProcess 'Every 10th' feeding this cache has none"]
    two = _digest(doc(), True, True)
    two["selectionProcess"][0]["selector"].append(
        dict(two["selectionProcess"][0]["selector"][-1], name="Again"))
    assert problems(two) == [f"{sp}: more than one filterHash outputs its digest; a packet "
                             "report has one digestHashValue"]
