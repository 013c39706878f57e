"""yangson's own findings, in our words. The earlier passes catch these first in normal use;
yangson stays the backstop, so its translation must still say the right thing."""

from __future__ import annotations

from typing import Any

from probe.config import yang_check
from probe.config.normalise import to_rfc7951
from tests.config.helpers import sample


def _doc() -> dict[str, Any]:
    doc, _, problems = to_rfc7951(sample("ipfix-udp.json"))
    assert problems == []
    return doc


def test_valid_sample_has_no_findings() -> None:
    assert yang_check.validate(_doc()) == []


def test_dangling_leafref() -> None:
    doc = _doc()
    doc["ietf-ipfix-psamp:ipfix"]["cache"][0]["exportingProcess"] = ["Gone"]
    assert yang_check.validate(doc) == [
        ("/ipfix/cache[name='Flow cache']/exportingProcess[.='Gone']",
         "no exportingProcess named 'Gone'")]


def test_duplicate_key() -> None:
    doc = _doc()
    fields = doc["ietf-ipfix-psamp:ipfix"]["cache"][0]["timeoutCache"]["cacheLayout"][
        "cacheField"]
    fields.append(dict(fields[0]))
    assert yang_check.validate(doc) == [
        ("/ipfix/cache[name='Flow cache']/timeoutCache/cacheLayout/cacheField",
         "two entries named 'Field 1'")]


def test_repeated_leaf_list_value() -> None:
    doc = _doc()
    doc["ietf-ipfix-psamp:ipfix"]["observationPoint"][0]["ifName"] = ["eth0", "eth0"]
    assert yang_check.validate(doc) == [
        ("/ipfix/observationPoint[name='eth0']/ifName", "a value appears twice")]


def test_raw_type_error_path() -> None:
    doc = _doc()
    doc["ietf-ipfix-psamp:ipfix"]["cache"][0]["timeoutCache"]["maxFlows"] = "many"
    assert yang_check.validate(doc) == [
        ("/ipfix/cache[name='Flow cache']/timeoutCache/maxFlows", "expected uint32 value")]
