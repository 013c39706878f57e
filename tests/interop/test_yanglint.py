"""libyang's yanglint, an implementation independent of yangson, must agree: every sample's
normalised RFC 7951 form is valid, and a dangling leafref is invalid to both."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from probe.config import normalised
from probe.config.schema import FEATURES, YANG_DIR

REPO = Path(__file__).resolve().parents[2]
YANG = YANG_DIR
SAMPLES = sorted((REPO / "configs").glob("*.json"))

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("yanglint") is None, reason="yanglint not installed "
                       "(apt-get install libyang-tools)"),
]


def _yanglint(data: Path) -> subprocess.CompletedProcess[str]:
    # Same features as yang-library.json: a config using anything else must fail here too.
    features = "ietf-ipfix-psamp:" + ",".join(FEATURES)
    cmd = ["yanglint", "-t", "config", "-p", str(YANG), "-F", features,
           str(YANG / "ietf-ipfix-psamp@2017-01-18.yang"), str(YANG / "flowprobe.yang"),
           str(data)]
    return subprocess.run(cmd, text=True, capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("config", SAMPLES, ids=[p.name for p in SAMPLES])
def test_yanglint_accepts_normalised_sample(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "rfc7951.json"
    out.write_text(json.dumps(normalised(config), indent=2))
    res = _yanglint(out)
    assert res.returncode == 0, res.stderr
    assert "err" not in res.stderr


def test_yanglint_rejects_dangling_leafref(tmp_path: Path) -> None:
    doc = normalised(REPO / "configs" / "ipfix-udp.json")
    doc["ietf-ipfix-psamp:ipfix"]["selectionProcess"][0]["cache"] = "Nope"
    out = tmp_path / "bad.json"
    out.write_text(json.dumps(doc))
    res = _yanglint(out)
    assert res.returncode != 0
    assert "Nope" in res.stderr


def test_every_feature_of_the_module_is_enabled() -> None:
    """Every RFC 6728 feature is implemented (SCTP has none: it is rejected by name)."""
    text = (YANG / "ietf-ipfix-psamp@2017-01-18.yang").read_text()
    declared = set(re.findall(r"^\s*feature (\w+) \{", text, re.M))
    assert declared == set(FEATURES)


def test_yanglint_accepts_converted_goflowd_numbers(tmp_path: Path) -> None:
    # goflowd writes uint64 and decimal64 as JSON numbers; our RFC 7951 output must not.
    src = json.loads((REPO / "configs" / "ipfix-udp.json").read_text())
    src["observationPoint"][0]["maxObservingPackets"] = 10**12
    src["selectionProcess"][0]["selector"] = [
        {"name": "tiny", "sampUniProb": {"probability": 1e-05, "seed": 7}},
        {"name": "n of N", "sampRandOutOfN": {"size": 1, "population": 10, "seed": 2**63}}]
    cfg = tmp_path / "goflowd.json"
    cfg.write_text(json.dumps(src))
    out = tmp_path / "rfc7951.json"
    out.write_text(json.dumps(normalised(cfg)))
    res = _yanglint(out)
    assert res.returncode == 0, res.stderr


def test_yanglint_and_flowprobe_agree_on_filter_hash(tmp_path: Path) -> None:
    """The filterHash sample (trajectory sampling, exporting to 127.0.0.1) passes both; the
    same selector without a selectedRange (min-elements 1) fails both."""
    from probe.config import load_data
    from probe.errors import UserError

    assert (REPO / "configs" / "sampling-hash.json") in SAMPLES
    doc = normalised(REPO / "configs" / "sampling-hash.json")
    sel = doc["ietf-ipfix-psamp:ipfix"]["selectionProcess"][0]["selector"][0]
    assert "filterHash" in sel
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    assert _yanglint(good).returncode == 0
    del sel["filterHash"]["selectedRange"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    res = _yanglint(bad)
    assert res.returncode != 0 and "selectedRange" in res.stderr
    with pytest.raises(UserError, match="selectedRange"):
        load_data(doc)
