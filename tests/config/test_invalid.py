"""Every kind of bad config a user can write: exit 2, one line per problem naming the file and
the /ipfix path, never a traceback, and nothing else accepted silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.config.helpers import sample, validate, write

C = "/ipfix/cache[name='Flow cache']/timeoutCache"
F1 = f"{C}/cacheLayout/cacheField[name='Field 1']"
OP = "/ipfix/observationPoint[name='eth0']"
SP = "/ipfix/selectionProcess[name='All']"
SEL = f"{SP}/selector[name='Select all']"
EP = "/ipfix/exportingProcess[name='Export']"
DEST = f"{EP}/destination[name='Collector']"
UDP = f"{DEST}/udpExporter"

Doc = dict[str, Any]


def _cache(d: Doc) -> Doc:
    return d["cache"][0]["timeoutCache"]


def _fields(d: Doc) -> list[Doc]:
    return _cache(d)["cacheLayout"]["cacheField"]


def _udp(d: Doc) -> Doc:
    return d["exportingProcess"][0]["destination"][0]["udpExporter"]


def _sel(d: Doc) -> Doc:
    return d["selectionProcess"][0]["selector"][0]


def _set(getter: Callable[[Doc], Doc], key: str, value: Any) -> Callable[[Doc], None]:
    return lambda d: getter(d).__setitem__(key, value)


def _pop(getter: Callable[[Doc], Doc], key: str) -> Callable[[Doc], None]:
    return lambda d: getter(d).pop(key)


def _replace_dest(kind: str, body: Doc) -> Callable[[Doc], None]:
    def f(d: Doc) -> None:
        d["exportingProcess"][0]["destination"][0] = {"name": "Collector", kind: body}
    return f


def _to_cache_kind(kind: str, drop: tuple[str, ...] = ()) -> Callable[[Doc], None]:
    def f(d: Doc) -> None:
        body = d["cache"][0].pop("timeoutCache")
        for k in drop:
            body.pop(k, None)
        d["cache"][0][kind] = body
    return f


def _v5_with(ie: str) -> Callable[[Doc], None]:
    def f(d: Doc) -> None:
        _udp(d)["ipfixVersion"] = 5
        _fields(d).append({"name": "Field 10", "ieName": ie})
    return f


def _field(i: int, **kv: Any) -> Callable[[Doc], None]:
    return lambda d: _fields(d)[i].update(kv)


def _selector(method: str, body: Doc) -> Callable[[Doc], None]:
    """Replace the first selector with one named S of ``method``."""
    return _set(lambda d: d["selectionProcess"][0]["selector"], 0, {"name": "S", method: body})


def _collector(d: Doc) -> None:
    d["collectingProcess"] = [{"name": "Relay", "udpCollector": [{"name": "in"}],
                               "exportingProcess": ["Nowhere"]}]


# (id, mutation of configs/ipfix-udp.json, expected path, expected words in the message)
SCHEMA_CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("wrong-type-string", _set(_cache, "maxFlows", "many"), f"{C}/maxFlows",
     '"many" is not a uint32'),
    ("negative-uint32", _set(_cache, "maxFlows", -5), f"{C}/maxFlows", "-5 is not a uint32"),
    ("boolean-for-number", _set(_cache, "idleTimeout", True), f"{C}/idleTimeout",
     "true is not a uint32"),
    ("out-of-range-augment", _set(lambda d: d["observationPoint"][0], "snapLength", 10),
     f"{OP}/snapLength", "10 is out of range (64..262144)"),
    ("out-of-range-port", _set(_udp, "destinationPort", 70000), f"{UDP}/destinationPort",
     "70000 is out of range"),
    ("bad-ip-address", _set(_udp, "destinationIPAddress", "127.0.0"),
     f"{UDP}/destinationIPAddress", '"127.0.0" is not an ip-address'),
    ("bad-enum", _set(lambda d: d["observationPoint"][0], "direction", "sideways"),
     f"{OP}/direction", "expected one of ingress, egress, both"),
    ("probability-above-1", lambda d: d["selectionProcess"][0]["selector"].__setitem__(
        0, {"name": "Select all", "sampUniProb": {"probability": 1.5}}),
     f"{SEL}/sampUniProb/probability", "1.5 is out of range (0.0..1.0)"),
    ("bad-identityref", _set(lambda d: d["exportingProcess"][0], "exportMode", "roundRobin"),
     f"{EP}/exportMode", '"roundRobin" is not an exportMode; expected one of fallback, '
     "loadBalancing, parallel"),
    ("name-with-spaces", _set(_sel, "name", " x"), f"{SP}/selector[name=' x']/name",
     "not a valid name"),
    ("empty-name", _set(_sel, "name", ""), f"{SP}/selector[name='']/name",
     "\"\" is not a valid name"),
    ("empty-ie-name", _field(0, ieName=""), f"{C}/cacheLayout/cacheField[name='Field 1']/ieName",
     "\"\" has an invalid length for ieNameType"),
    ("empty-as-true", _set(_sel, "selectAll", True), f"{SEL}/selectAll", "write [null]"),
    ("list-not-array", _set(lambda d: d, "cache", {"name": "Flow cache"}), "/ipfix/cache",
     "expected an array, got an object"),
    ("missing-mandatory-leaf", _pop(lambda d: d["observationPoint"][0], "observationDomainId"),
     OP, "missing mandatory 'observationDomainId'"),
    ("missing-destination-address", _pop(_udp, "destinationIPAddress"), UDP,
     "missing mandatory 'destinationIPAddress'"),
    ("missing-list-key", lambda d: _fields(d)[0].pop("name"),
     f"{C}/cacheLayout/cacheField[1]", "missing key 'name'"),
    ("missing-cache-type", lambda d: d["cache"][0].pop("timeoutCache"),
     "/ipfix/cache[name='Flow cache']", "missing CacheType: needs one of immediateCache"),
    ("selector-without-method", _pop(_sel, "selectAll"), SEL,
     "missing Method: needs one of selectAll"),
    ("two-methods-in-selector", _set(_sel, "sampCountBased",
                                     {"packetInterval": 1, "packetSpace": 9}),
     SEL, "selectAll and sampCountBased are alternatives"),
    ("ieName-and-ieId", _field(0, ieId=8), F1, "ieName and ieId are alternatives"),
    ("empty-selector-list", _set(lambda d: d["selectionProcess"][0], "selector", []),
     f"{SP}/selector", "needs at least one entry"),
    ("dangling-op-to-sp", _set(lambda d: d["observationPoint"][0], "selectionProcess",
                               ["Nope"]),
     f"{OP}/selectionProcess[.='Nope']", "no selectionProcess named 'Nope'"),
    ("dangling-sp-to-cache", _set(lambda d: d["selectionProcess"][0], "cache", "Nope"),
     f"{SP}/cache", "no cache named 'Nope'"),
    ("dangling-cache-to-ep", _set(lambda d: d["cache"][0], "exportingProcess", ["Nope"]),
     "/ipfix/cache[name='Flow cache']/exportingProcess[.='Nope']",
     "no exportingProcess named 'Nope'"),
    ("dangling-collector-to-ep", _collector,
     "/ipfix/collectingProcess[name='Relay']/exportingProcess[.='Nowhere']",
     "no exportingProcess named 'Nowhere'"),
    ("duplicate-list-key", lambda d: _fields(d).append(
        {"name": "Field 1", "ieName": "ipVersion"}),
     f"{C}/cacheLayout/cacheField", "two entries named 'Field 1'"),
    ("duplicate-cache-name", lambda d: d["cache"].append(d["cache"][0]), "/ipfix/cache",
     "two entries named 'Flow cache'"),
    ("repeated-leaf-list-value", _set(lambda d: d["observationPoint"][0], "selectionProcess",
                                      ["All", "All"]),
     f"{OP}/selectionProcess", "'All' appears twice"),
    ("unknown-member", _set(lambda d: d["cache"][0], "colour", "blue"),
     "/ipfix/cache[name='Flow cache']/colour", "unknown member 'colour'"),
    ("misspelt-member", lambda d: _cache(d).__setitem__("activeTimout",
                                                        _cache(d).pop("activeTimeout")),
     f"{C}/activeTimout", "did you mean 'activeTimeout'?"),
    ("unknown-top-level", _set(lambda d: d, "exporters", []), "/ipfix/exporters",
     "unknown member 'exporters'"),
    ("state-data", _set(lambda d: d["cache"][0], "dataRecords", 5),
     "/ipfix/cache[name='Flow cache']/dataRecords",
     "'dataRecords' is state data the probe reports, not configuration"),
    ("exporter-interface", _set(_udp, "ifName", "lo"), f"{UDP}/ifName",
     "choosing the outgoing interface is not supported"),
    ("line-card", _set(lambda d: d["observationPoint"][0], "entPhysicalName", ["lc0"]),
     f"{OP}/entPhysicalName", "line cards are not supported"),
    ("sctp-exporter", _replace_dest("sctpExporter", {"destinationIPAddress": ["127.0.0.1"]}),
     f"{DEST}/sctpExporter", "SCTP export is not supported: this machine's kernel has no SCTP "
                             "(its sockets fail with EPROTONOSUPPORT)"),
    ("file-writer-v9", _replace_dest("fileWriter", {"file": "file:///tmp/x.ipfix",
                                                    "ipfixVersion": 9}),
     f"{DEST}/fileWriter/ipfixVersion", "an IPFIX File (RFC 5655) holds IPFIX Messages: "
                                        "ipfixVersion must be 10, not 9"),
    ("file-writer-remote", _replace_dest("fileWriter", {"file": "file://far/x.ipfix"}),
     f"{DEST}/fileWriter/file", "names a file on host 'far'; only local files"),
    ("file-writer-scheme", _replace_dest("fileWriter", {"file": "https://x/flows"}),
     f"{DEST}/fileWriter/file", "only local files can be read or written"),
    ("filter-hash-state-leaf", _selector("filterHash", {"outputRangeMax": 7}),
     f"{SP}/selector[name='S']/filterHash/outputRangeMax",
     "'outputRangeMax' is state data the probe reports, not configuration"),
    ("filter-hash-unknown-function", _selector("filterHash", {"hashFunction": "MD5"}),
     f"{SP}/selector[name='S']/filterHash/hashFunction", "expected one of BOB, CRC, IPSX"),
    ("filter-match-two-ies", _selector("filterMatch", {"ieName": "vlanId", "ieId": 58,
                                                        "value": "1"}),
     f"{SP}/selector[name='S']/filterMatch", "ieName and ieId are alternatives"),
    ("v9-over-tcp", _replace_dest("tcpExporter", {"destinationIPAddress": "127.0.0.1",
                                                  "ipfixVersion": 9}),
     f"{DEST}/tcpExporter/ipfixVersion", "NetFlow v9 cannot go over TCP: RFC 3954 defines it "
                                         "for UDP only and its header has no length"),
    ("tls-without-certificate", _replace_dest("tcpExporter", {
        "destinationIPAddress": "127.0.0.1", "transportLayerSecurity": {
            "remoteSubjectFQDN": ["collector.example"]}}),
     f"{DEST}/tcpExporter/transportLayerSecurity", "needs flowprobe:certificateFile (and "
     "privateKeyFile unless the key is in it): TLS for IPFIX authenticates both ends"),
    ("dtls", _set(_udp, "transportLayerSecurity", {}), f"{UDP}/transportLayerSecurity",
     "DTLS (TLS over UDP, what transportLayerSecurity means on a udpExporter) is not "
     "supported: Python's ssl module has no DTLS; use a tcpExporter with "
     "transportLayerSecurity"),
    ("active-timeout-in-permanent-cache", _to_cache_kind("permanentCache"),
     "/ipfix/cache[name='Flow cache']/permanentCache",
     "'activeTimeout' is not allowed here (only timeoutCache and naturalCache have it)"),
    ("timeout-in-immediate-cache", _to_cache_kind("immediateCache", ("maxFlows",
                                                                      "idleTimeout")),
     "/ipfix/cache[name='Flow cache']/immediateCache/activeTimeout",
     "an immediateCache exports each packet at once and keeps no flows, so it has no "
     "activeTimeout"),
    ("flow-key-in-immediate-cache", _to_cache_kind(
        "immediateCache", ("maxFlows", "activeTimeout", "idleTimeout")),
     "/ipfix/cache[name='Flow cache']/immediateCache/cacheLayout/cacheField[name='Field 1']",
     "'isFlowKey' is not allowed here (an immediateCache has no flow keys"),
]

SEMANTIC_CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("total-counter-in-timeout-cache", _field(7, ieName="octetTotalCount"),
     f"{C}/cacheLayout/cacheField[name='Field 8']", "a timeoutCache reports each flow once "
     "with delta counters: use octetDeltaCount, not octetTotalCount"),
    ("delta-counter-in-permanent-cache", _to_cache_kind("permanentCache",
                                                        ("activeTimeout", "idleTimeout")),
     "/ipfix/cache[name='Flow cache']/permanentCache/cacheLayout/cacheField[name='Field 8']",
     "a permanentCache reports cumulative counters: use octetTotalCount, not octetDeltaCount"),
    ("unknown-ie-name", _field(1, ieName="destinationIPv4Adress"), f"{C}/cacheLayout/"
     "cacheField[name='Field 2']", "unknown Information Element 'destinationIPv4Adress'; "
     "did you mean 'destinationIPv4Address'?"),
    ("unknown-ie-id", lambda d: _fields(d)[5].__setitem__("ieId", 32000) or _fields(d)[5].pop(
        "ieName"), f"{C}/cacheLayout/cacheField[name='Field 6']",
     "unknown Information Element id 32000"),
    ("ie-meter-cannot-fill", _field(6, ieName="bgpSourceAsNumber"),
     f"{C}/cacheLayout/cacheField[name='Field 7']",
     "flowprobe's meter cannot fill bgpSourceAsNumber (16)"),
    ("counter-as-key", _field(7, isFlowKey=[None]),
     f"{C}/cacheLayout/cacheField[name='Field 8']", "octetDeltaCount cannot be a flow key"),
    ("enterprise-ie", _field(8, ieEnterpriseNumber=9),
     f"{C}/cacheLayout/cacheField[name='Field 9']", "enterprise-specific"),
    ("forward-ie-as-reverse", _field(8, ieEnterpriseNumber=29305),
     f"{C}/cacheLayout/cacheField[name='Field 9']",
     "RFC 5103's reverse of packetDeltaCount is 'reversePacketDeltaCount'"),
    ("biflow-one-ended-key", lambda d: _fields(d).__setitem__(
        slice(0, 2), [{"name": "Field 1", "ieName": "sourceIPv4Address",
                       "isFlowKey": [None]},
                      {"name": "R", "ieName": "reverseOctetDeltaCount",
                       "ieEnterpriseNumber": 29305}]),
     f"{C}/cacheLayout", "it has sourceIPv4Address as a flow key, so it needs "
                         "destinationIPv4Address as one too"),
    ("bad-ie-length", _field(0, ieLength=2), f"{F1}/ieLength",
     "2 is not a valid length for sourceIPv4Address (ipv4Address: 4)"),
    ("duplicate-ie", lambda d: _fields(d).append({"name": "Field 10",
                                                  "ieName": "sourceIPv4Address"}),
     f"{C}/cacheLayout/cacheField[name='Field 10']",
     "sourceIPv4Address is already in the layout as field 'Field 1'"),
    ("no-flow-key", lambda d: [f.pop("isFlowKey", None) for f in _fields(d)],
     f"{C}/cacheLayout", "a timeoutCache needs at least one flow key"),
    ("unsupported-version-7", _set(_udp, "ipfixVersion", 7), f"{UDP}/ipfixVersion",
     "version 7 is not supported"),
    ("v5-non-carriable", _v5_with("minimumTTL"),
     f"{C}/cacheLayout/cacheField[name='Field 10']",
     "minimumTTL cannot be carried by NetFlow v5"),
    ("zero-max-flows", _set(_cache, "maxFlows", 0), f"{C}/maxFlows", "must be at least 1"),
    ("count-interval-zero", _set(lambda d: d["selectionProcess"][0]["selector"], 0,
                                 {"name": "S", "sampCountBased": {"packetInterval": 0,
                                                                  "packetSpace": 5}}),
     f"{SP}/selector[name='S']/sampCountBased/packetInterval", "must be at least 1"),
    ("rand-size-above-population", _set(lambda d: d["selectionProcess"][0]["selector"], 0,
                                        {"name": "S", "sampRandOutOfN": {"size": 10,
                                                                         "population": 5}}),
     f"{SP}/selector[name='S']/sampRandOutOfN/size", "between 1 and the population 5"),
    ("nothing-to-observe", _pop(lambda d: d["observationPoint"][0], "ifName"), OP,
     "nothing to observe"),
    ("interface-and-file", _set(lambda d: d["observationPoint"][0], "offlineFile", "x.pcap"),
     OP, "not both"),
    ("collector-without-endpoint", lambda d: d.__setitem__(
        "collectingProcess", [{"name": "Relay"}]), "/ipfix/collectingProcess[name='Relay']",
     "needs a udpCollector, a tcpCollector or a fileReader"),
    ("filter-hash-range-above-ipsx", _selector("filterHash", {
        "hashFunction": "IPSX", "selectedRange": [{"name": "r", "min": 0, "max": 70000}]}),
     f"{SP}/selector[name='S']/filterHash/selectedRange[name='r']/max",
     "70000 is above the largest IPSX value (65535)"),
    ("filter-hash-overlap", _selector("filterHash", {"selectedRange": [
        {"name": "a", "min": 0, "max": 100}, {"name": "b", "min": 100, "max": 200}]}),
     f"{SP}/selector[name='S']/filterHash/selectedRange[name='b']",
     "overlaps selectedRange 'a'"),
    ("filter-hash-min-above-max", _selector("filterHash", {"selectedRange": [
        {"name": "a", "min": 10, "max": 5}]}),
     f"{SP}/selector[name='S']/filterHash/selectedRange[name='a']", "min 10 is above max 5"),
    ("filter-hash-64-bit-initializer", _selector("filterHash", {
        "initializerValue": 2**32, "selectedRange": [{"name": "a", "max": 5}]}),
     f"{SP}/selector[name='S']/filterHash/initializerValue",
     "BOB takes a 32-bit initializer (0..4294967295)"),
    ("filter-hash-ipsx-initializer", _selector("filterHash", {
        "hashFunction": "IPSX", "initializerValue": 1, "selectedRange": [{"name": "a"}]}),
     f"{SP}/selector[name='S']/filterHash/initializerValue", "IPSX takes no initializer"),
    ("filter-hash-ipsx-payload", _selector("filterHash", {
        "hashFunction": "IPSX", "ipPayloadSize": 16, "selectedRange": [{"name": "a"}]}),
     f"{SP}/selector[name='S']/filterHash/ipPayloadOffset",
     "IPSX always hashes IP payload octets 0..7"),
    ("filter-hash-payload-out-of-reach", _selector("filterHash", {
        "ipPayloadOffset": 60, "ipPayloadSize": 8, "selectedRange": [{"name": "a"}]}),
     f"{SP}/selector[name='S']/filterHash/ipPayloadSize",
     "octets 60..67 of the IP payload are out of reach"),
    ("filter-hash-digest", _selector("filterHash", {
        "digestOutput": True, "selectedRange": [{"name": "a"}]}),
     f"{SP}/selector[name='S']/filterHash/digestOutput",
     "the digest goes into the packet reports' digestHashValue, and cache 'Flow cache' has none "
     "in its layout"),
    ("filter-match-not-a-packet-property", _selector("filterMatch", {
        "ieName": "octetDeltaCount", "value": "5"}),
     f"{SP}/selector[name='S']/filterMatch",
     "octetDeltaCount is not a packet property flowprobe reads"),
    ("filter-match-bad-address", _selector("filterMatch", {
        "ieName": "sourceIPv4Address", "value": "192.0.2.300"}),
     f"{SP}/selector[name='S']/filterMatch/value",
     "'192.0.2.300' is not a value of sourceIPv4Address (ipv4Address)"),
    ("filter-match-too-wide", _selector("filterMatch", {"ieId": 4, "value": "256"}),
     f"{SP}/selector[name='S']/filterMatch/value",
     "256 is out of range for protocolIdentifier (unsigned8)"),
    ("filter-match-bad-mac", _selector("filterMatch", {
        "ieName": "sourceMacAddress", "value": "00:11:22:33:44"}),
     f"{SP}/selector[name='S']/filterMatch/value", "is not a value of sourceMacAddress"),
    ("v5-options", lambda d: (_udp(d).__setitem__("ipfixVersion", 5),
                              d["exportingProcess"][0].__setitem__(
                                  "options", [{"name": "o", "optionsType": "flowKeys"}])),
     f"{EP}/options", "NetFlow v5 cannot carry options records"),
]


def _one_problem(status: int, err: str, path: Path, jpath: str, words: str) -> None:
    assert status == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines, "no message"
    for line in lines:
        assert line.startswith(f"{path}: /ipfix"), line
    assert f"{path}: {jpath}: " in err, err
    assert words in err, err


@pytest.mark.parametrize(("mutate", "jpath", "words"),
                         [c[1:] for c in SCHEMA_CASES + SEMANTIC_CASES],
                         ids=[c[0] for c in SCHEMA_CASES + SEMANTIC_CASES])
def test_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        mutate: Callable[[Doc], None], jpath: str, words: str) -> None:
    doc = sample("ipfix-udp.json")
    doc["observationPoint"][0]["name"] = "eth0"
    mutate(doc)
    path = write(tmp_path, doc)
    status, out, err = validate(capsys, str(path))
    assert out == ""
    _one_problem(status, err, path, jpath, words)


def test_rfc7951_form_errors_use_the_same_paths(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    doc = sample("rfc7951.json")
    body = doc["ietf-ipfix-psamp:ipfix"]
    body["observationPoint"][0]["flowprobe:snapLength"] = 63
    body["cache"][0]["timeoutCache"]["maxFlows"] = -5
    path = write(tmp_path, doc)
    status, _, err = validate(capsys, str(path))
    assert status == 2
    assert err.splitlines() == [
        f"{path}: /ipfix/observationPoint[name='eth0']/snapLength: 63 is out of range "
        "(64..262144)",
        f"{path}: /ipfix/cache[name='Flow cache']/timeoutCache/maxFlows: -5 is not a uint32",
    ]


def test_every_dangling_reference_is_reported(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Renaming the cache breaks one link, renaming the exporting process another: both shown.
    doc = sample("ipfix-udp.json")
    doc["cache"][0]["name"] = "Renamed cache"
    doc["exportingProcess"][0]["name"] = "Renamed export"
    path = write(tmp_path, doc)
    status, _, err = validate(capsys, str(path))
    assert status == 2
    assert err.splitlines() == [
        f"{path}: {SP}/cache: no cache named 'Flow cache'",
        f"{path}: /ipfix/cache[name='Renamed cache']/exportingProcess[.='Export']: "
        "no exportingProcess named 'Export'",
    ]


def test_every_problem_is_reported_once(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    doc = sample("ipfix-udp.json")
    _fields(doc)[0]["ieName"] = "noSuchElement"
    _fields(doc)[1]["ieName"] = "bgpNextHopIPv4Address"
    _udp(doc)["ipfixVersion"] = 8
    path = write(tmp_path, doc)
    status, _, err = validate(capsys, str(path))
    assert status == 2
    assert len(err.splitlines()) == 3, err


# ---------------------------------------------------------------- file-level problems
FILE_CASES: list[tuple[str, bytes, str]] = [
    ("json-syntax", b'{"observationPoint": [\n  {"name": "x",}\n]}',
     ": line 2, column 16: not valid JSON: Expecting property name"),
    ("empty-file", b"", ": empty file; expected a JSON object"),
    ("blank-file", b"  \n\t\n", ": empty file"),
    ("top-level-array", b"[1, 2]", ": the top level is an array; expected a JSON object"),
    ("top-level-string", b'"ipfix"', ": the top level is a string"),
    ("not-utf8", b'{"observationPoint": "\xff"}', ": not UTF-8 text (byte 0xff at offset 22)"),
    ("duplicate-json-member", b'{"cache": [], "cache": []}', "member 'cache' appears twice"),
    ("nan", b'{"cache": NaN}', "NaN is not a JSON number"),
    ("ipfix-not-object", b'{"ietf-ipfix-psamp:ipfix": []}',
     ": /ipfix: expected a JSON object, got an array"),
    ("rfc7951-extra-top-level", b'{"ietf-ipfix-psamp:ipfix": {}, "other:x": 1}',
     ": /ipfix: unknown top-level member 'other:x'"),
]


@pytest.mark.parametrize(("content", "words"), [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes,
                  words: str) -> None:
    path = tmp_path / "cfg.json"
    path.write_bytes(content)
    status, out, err = validate(capsys, str(path))
    assert (status, out) == (2, "")
    assert err.startswith(str(path)), err
    assert words in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = validate(capsys, str(tmp_path / "nope.json"))
    assert (status, err) == (2, f"{tmp_path / 'nope.json'}: no such file\n")


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = validate(capsys, str(tmp_path))
    assert (status, err) == (2, f"{tmp_path}: is a directory, not a config file\n")


def test_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, which reads any file: make the read itself fail as it would for a user.
    path = write(tmp_path, "{}")

    def denied(self: Path, *args: object, **kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "open", denied)
    status, _, err = validate(capsys, str(path))
    assert (status, err) == (2, f"{path}: cannot read: permission denied\n")
