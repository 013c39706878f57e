"""The tunnel switches of an observation point (flowprobe:tunnels) and the MPLS and tunnel IEs
of a layout: what a valid config gives the runtime, and every way to get them wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from probe.config import load, load_data
from probe.config.model import TUNNELS
from probe.ie import MPLS_LABEL_SECTIONS, TUNNEL_ELEMENTS
from tests.config.helpers import CONFIGS, sample, validate, write
from tests.config.test_invalid import _one_problem

C = "/ipfix/cache[name='Flow cache']/timeoutCache"
OP = "/ipfix/observationPoint[name='core0']"
Doc = dict[str, Any]


def _field(d: Doc, name: str) -> Doc:
    fields = d["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"]
    return next(f for f in fields if f["ieName"] == name)


def _fpath(d: Doc, name: str) -> str:
    return f"{C}/cacheLayout/cacheField[name='{_field(d, name)['name']}']"


def test_tunnels_sample_switches_everything_and_carries_every_new_ie() -> None:
    config = load(CONFIGS / "tunnels.json")
    (op,) = config.observation_points
    assert op.tunnels == TUNNELS
    fields = {f.ie_name: f for f in config.caches[0].layout.fields}
    assert set(MPLS_LABEL_SECTIONS[:2]) | TUNNEL_ELEMENTS <= set(fields)
    assert fields["UNTUNNELED_IPV4_SRC_ADDR"].enterprise_number == 35632
    assert (fields["UNTUNNELED_IPV4_SRC_ADDR"].ie_id, fields["greKey"].ie_id) == (114, 296)
    assert fields["greKey"].enterprise_number == 0


def test_switches_default_to_off_in_both_forms() -> None:
    doc = sample("tunnels.json")
    doc["observationPoint"][0]["tunnels"] = {"vxlan": True, "gre": True, "geneve": False}
    assert load_data(doc, "t.json").observation_points[0].tunnels == ("gre", "vxlan")
    del doc["observationPoint"][0]["tunnels"]
    doc["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"] = [
        f for f in doc["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"]
        if f["ieName"] not in TUNNEL_ELEMENTS]
    assert load_data(doc, "t.json").observation_points[0].tunnels == ()
    rfc = sample("rfc7951.json")
    rfc["ietf-ipfix-psamp:ipfix"]["observationPoint"][0]["flowprobe:tunnels"] = {
        "gtpU": True, "ipv6InIp": True}
    assert load_data(rfc, "r.json").observation_points[0].tunnels == ("gtpU", "ipv6InIp")


def _tunnels(value: Any) -> Callable[[Doc], None]:
    return lambda d: d["observationPoint"][0].__setitem__("tunnels", value)


def _only(*switches: str) -> Callable[[Doc], None]:
    return _tunnels({s: True for s in switches})


def _set_field(name: str, **kv: Any) -> Callable[[Doc], None]:
    return lambda d: _field(d, name).update(kv)


def _v9(d: Doc) -> None:
    d["exportingProcess"][0]["destination"][0]["udpExporter"]["ipfixVersion"] = 9


def _drop_pen(d: Doc) -> None:
    _field(d, "UPSTREAM_TUNNEL_ID").pop("ieEnterpriseNumber")


# (id, mutation of configs/tunnels.json, field or path, expected words)
CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("switch-not-boolean", _tunnels({"gre": "yes"}), f"{OP}/tunnels/gre",
     '"yes" is not a boolean'),
    ("unknown-switch", _tunnels({"mpls": True}), f"{OP}/tunnels/mpls",
     "unknown member 'mpls'"),
    ("switches-not-object", _tunnels(["gre"]), f"{OP}/tunnels", "expected an object"),
    ("enterprise-name-without-pen", _drop_pen, "UPSTREAM_TUNNEL_ID",
     "UPSTREAM_TUNNEL_ID is an enterprise-specific Information Element: give "
     "ieEnterpriseNumber 35632 with it"),
    ("iana-name-with-pen", _set_field("greKey", ieEnterpriseNumber=35632), "greKey",
     "enterprise 35632 has no Information Element 'greKey'"),
    ("unknown-enterprise", _set_field("greKey", ieEnterpriseNumber=9), "greKey",
     "enterprise-specific Information Elements of enterprise 9 are not supported"),
    ("unknown-enterprise-id", lambda d: (_field(d, "UNTUNNELED_PROTOCOL").update(ieId=9999),
                                         _field(d, "UNTUNNELED_PROTOCOL").pop("ieName")),
     "UNTUNNELED_PROTOCOL", "unknown Information Element id 9999 of enterprise 35632"),
    ("close-enterprise-name", _set_field("UNTUNNELED_PROTOCOL", ieName="UNTUNNELED_PROTO"),
     "UNTUNNELED_PROTOCOL", "did you mean 'UNTUNNELED_PROTOCOL'?"),
    ("v9-enterprise", _v9, "UPSTREAM_TUNNEL_ID",
     "UPSTREAM_TUNNEL_ID is enterprise-specific, which NetFlow v9 cannot carry"),
    ("no-tunnel-opened", _only(), "UNTUNNELED_IPV4_SRC_ADDR",
     "UNTUNNELED_IPV4_SRC_ADDR is filled only from opened tunnels, and no observationPoint "
     "feeding this cache opens one (flowprobe:tunnels)"),
    ("gre-key-without-gre", _only("vxlan", "geneve", "gtpU"), "greKey",
     "(flowprobe:tunnels/gre)"),
    ("segment-id-without-vxlan", _only("geneve", "ipInIp"), "layer2SegmentId",
     "(flowprobe:tunnels/vxlan or flowprobe:tunnels/gre)"),
    ("tunnel-id-from-ip-in-ip", _only("ipInIp", "ipv6InIp"), "UPSTREAM_TUNNEL_ID",
     "flowprobe:tunnels/gtpU"),
    ("mpls-section-length", _set_field("mplsTopLabelStackSection", ieLength=4),
     "mplsTopLabelStackSection", "4 is not a valid length for mplsTopLabelStackSection "
     "(octetArray: 3)"),
]


@pytest.mark.parametrize(("mutate", "where", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_invalid_tunnel_config(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               mutate: Callable[[Doc], None], where: str, words: str) -> None:
    doc = sample("tunnels.json")
    jpath = where if where.startswith("/") else _fpath(doc, where)
    mutate(doc)
    if words.startswith("4 is not a valid length"):
        jpath += "/ieLength"
    path = write(tmp_path, doc)
    status, out, err = validate(capsys, str(path))
    assert out == ""
    if where.startswith("/"):
        _one_problem(status, err, path, jpath, words)
    else:  # semantic: this field's problem is there, maybe beside others the same change made
        assert status == 2 and f"{path}: {jpath}: " in err and words in err, err


def test_tunnel_ies_in_a_netflow_v5_layout_are_refused(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    doc = sample("netflow-v5.json")
    doc["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"].append(
        {"name": "Labels", "ieName": "mplsTopLabelStackSection"})
    path = write(tmp_path, doc)
    status, _, err = validate(capsys, str(path))
    assert status == 2 and "mplsTopLabelStackSection cannot be carried by NetFlow v5" in err
