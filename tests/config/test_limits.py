"""Hostile sizes and shapes of config files (issue #13): each ends in one line and exit 2
before the parser or yangson spend minutes, or a stack, on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.config import load_text
from probe.config.normalise import MAX_CACHE_FIELDS, MAX_ENTRIES
from probe.config.source import MAX_CONFIG_BYTES, MAX_DEPTH, parse_text
from probe.errors import UserError
from probe.ie import METERED
from tests.config.helpers import sample, validate, write

LAYOUT = "/ipfix/cache[name='Flow cache']/timeoutCache/cacheLayout/cacheField"


def _one_line(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    status, out, err = validate(capsys, str(path))
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err[:500]
    assert err.startswith(f"{path}: ")
    return err.rstrip("\n")


@pytest.mark.parametrize(("text", "where"), [
    ("[" * 1000 + "]" * 1000, "line 1, column 33"),
    ('{"a":' * 1000 + "1" + "}" * 1000, "line 1, column 161"),
    ('{"cache":\n' + "[" * 40 + "]" * 40 + "}", "line 2, column 32"),
    ("[" * 100_000, "line 1, column 33"),  # unbalanced: refused before JSON syntax is read
])
def test_deep_nesting(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                      where: str) -> None:
    path = write(tmp_path, text)
    assert _one_line(capsys, path) == (
        f"{path}: {where}: nested more than {MAX_DEPTH} levels deep; a config needs at most 9")


def test_brackets_inside_strings_do_not_count(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    doc = sample("ipfix-udp.json")
    doc["observationPoint"][0]["name"] = "[{" * 100 + '\\"' + "]}"
    status, out, err = validate(capsys, str(write(tmp_path, json.dumps(doc))))
    assert (status, err) == (0, ""), err
    assert "valid: 1 observation point" in out


def test_the_deepest_valid_config_is_well_inside_the_limit() -> None:
    # {ipfix: {cache: [{timeoutCache: {cacheLayout: {cacheField: [{isFlowKey: [null]}]}}}]}}
    deepest = sample("rfc7951.json")
    depth = 0

    def walk(node: Any, level: int) -> None:
        nonlocal depth
        if isinstance(node, dict | list):
            depth = max(depth, level)
            for child in node.values() if isinstance(node, dict) else node:
                walk(child, level + 1)
    walk(deepest, 1)
    assert depth == 9 < MAX_DEPTH


def test_ten_megabytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 140,000 cache fields made 7.6 MB and 7 minutes of validation before the bound.
    doc = sample("ipfix-udp.json")
    doc["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"] = [
        {"name": f"F{i}", "ieName": "octetDeltaCount"} for i in range(210_000)]
    path = write(tmp_path, doc)
    size = path.stat().st_size
    assert size > 10_000_000
    assert _one_line(capsys, path) == (
        f"{path}: {size} bytes; a config may hold at most {MAX_CONFIG_BYTES} bytes (256 KiB)")


def test_a_stream_without_a_size(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = validate(capsys, "/dev/zero")
    assert (status, err) == (2, f"/dev/zero: more than {MAX_CONFIG_BYTES} bytes (256 KiB), "
                                "the most a config may hold\n")


def test_padding_up_to_the_limit_is_accepted(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(sample("ipfix-udp.json"))
    path = write(tmp_path, text + " " * (MAX_CONFIG_BYTES - len(text)))
    assert validate(capsys, str(path))[0] == 0
    path.write_text(text + " " * (MAX_CONFIG_BYTES + 1 - len(text)))
    assert "a config may hold at most" in _one_line(capsys, path)


def test_too_many_cache_fields_is_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Under the size limit, yet quadratic in yangson (each entry zips its whole list): 4,000
    # fields are refused by count, in one line rather than 4,000 "already in the layout".
    doc = sample("ipfix-udp.json")
    fields = doc["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"]
    fields += [{"name": f"F{i}", "ieName": "octetDeltaCount"} for i in range(4000)]
    path = write(tmp_path, doc)
    assert _one_line(capsys, path) == (
        f"{path}: {LAYOUT}: 4009 fields; a cache layout holds at most {len(METERED)}, each "
        "Information Element the meter fills once")


def test_every_metered_ie_fits_in_one_layout() -> None:
    from probe.ie import CUMULATIVE_COUNTERS, PACKET_REPORT, by_name
    doc = sample("ipfix-udp.json")
    names = [n for n in sorted(METERED) if n not in CUMULATIVE_COUNTERS
             and n not in PACKET_REPORT]  # a flow cache: the packet reports' IEs go below
    doc["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"] = [
        {"name": n, "ieName": n,
         **({"isFlowKey": [None]} if n in ("sourceIPv4Address", "destinationIPv4Address")
            else {}),  # a biflow cache (with the reverse IEs) keys on both ends
         **({"ieEnterpriseNumber": pen} if (pen := by_name(n).pen) else {})}  # type: ignore[union-attr]
        for n in names]
    # the tunnel IEs are filled only where an observation point opens tunnels
    doc["observationPoint"][0]["tunnels"] = {"gre": True, "vxlan": True}
    config = load_text(json.dumps(doc))
    assert len(config.caches[0].layout.fields) == len(names) <= MAX_CACHE_FIELDS
    # An immediateCache (PSAMP packet reports) takes the packet report's IEs (but
    # sectionExportedOctets, which needs a layout of one section, and digestHashValue, which
    # needs a filterHash with digestOutput) beside the flow ones.
    reports = sorted(PACKET_REPORT - {"sectionExportedOctets", "digestHashValue"})
    doc["cache"][0] = {"name": doc["cache"][0]["name"], "immediateCache": {"cacheLayout": {
        "cacheField": [{"name": n, "ieName": n} for n in ("sourceIPv4Address", *reports)]}},
        "exportingProcess": doc["cache"][0]["exportingProcess"]}
    config = load_text(json.dumps(doc))
    assert len(config.caches[0].layout.fields) == len(reports) + 1 <= MAX_CACHE_FIELDS


def test_too_many_list_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = sample("ipfix-udp.json")
    doc["observationPoint"][0]["ifName"] = [f"e{i}" for i in range(MAX_ENTRIES + 1)]
    path = write(tmp_path, doc)
    assert _one_line(capsys, path) == (
        f"{path}: /ipfix/observationPoint[name='eth0']/ifName: {MAX_ENTRIES + 1} entries; "
        f"at most {MAX_ENTRIES} are accepted")
    doc["observationPoint"][0]["ifName"] = [f"e{i}" for i in range(MAX_ENTRIES)]
    assert validate(capsys, str(write(tmp_path, doc)))[0] == 0


JSONISH = st.text(alphabet='[]{}",:0 \\na', max_size=400)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=JSONISH, depth=st.integers(0, 3 * MAX_DEPTH))
def test_any_text_is_an_object_or_one_line(text: str, depth: int) -> None:
    """Random bracket soup, possibly deep: a JSON object or a single UserError line."""
    try:
        doc = parse_text("[" * depth + text + "]" * depth, "fuzz.json")
    except UserError as exc:
        assert len(exc.problems) == 1 and exc.problems[0].startswith("fuzz.json: ")
        assert "\n" not in exc.problems[0]
    else:
        assert isinstance(doc, dict)
