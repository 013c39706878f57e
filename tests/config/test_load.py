"""What the runtime gets from a valid config: resolved references, RFC 6728 units, defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import pydantic
import pytest

from probe.config import load, load_data, load_text, normalised
from probe.config.model import (
    FilterHash,
    FilterMatch,
    HashRange,
    SampTimeBased,
    SampUniProb,
    SelectAll,
)
from probe.config.schema import data_model
from tests.config.helpers import CONFIGS, SAMPLES, sample, with_second_cache, write


def test_every_sample_config_loads() -> None:
    names = {p.name for p in SAMPLES}
    assert {"goflowd-sample.json", "ipfix-udp.json", "ipfix-tcp.json", "netflow-v5.json",
            "netflow-v9.json", "sampling-count.json", "sampling-time.json", "ipv4-ipv6.json",
            "offline-replay.json", "rfc7951.json"} <= names
    for path in SAMPLES:
        config = load(path)
        assert config.source == str(path)
        assert config.observation_points and config.caches and config.exporting_processes


def test_samples_export_only_to_loopback() -> None:
    for path in SAMPLES:
        for ep in load(path).exporting_processes:
            for dest in ep.destinations:
                if dest.transport == "file":  # or to a file under /tmp
                    assert (dest.file_path or "").startswith("/tmp/"), path
                else:
                    assert dest.destination_address in ("127.0.0.1", "::1"), path


def test_goflowd_sample_leafrefs_resolve_to_objects() -> None:
    config = load(CONFIGS / "goflowd-sample.json")
    (op,) = config.observation_points
    (sp,) = config.selection_processes
    (cache,) = config.caches
    (ep,) = config.exporting_processes
    assert op.selection_processes[0] is sp
    assert sp.cache is cache
    assert cache.exporting_processes[0] is ep
    assert (op.name, op.observation_domain_id, op.if_names, op.direction) == (
        "pcap", 1, ("enp0s3",), "ingress")
    assert sp.selectors == (SelectAll(name="Select all"),)
    assert cache.kind == "timeoutCache" and cache.max_flows == 4096
    assert cache.layout.key_names == ("sourceIPv4Address", "destinationIPv4Address",
                                      "protocolIdentifier", "sourceTransportPort",
                                      "destinationTransportPort")
    assert cache.layout.nonkey_names == ("flowStartMilliseconds", "flowEndMilliseconds",
                                         "octetDeltaCount", "packetDeltaCount")
    assert [f.ie_id for f in cache.layout.fields] == [8, 12, 4, 7, 11, 152, 153, 1, 2]
    (dest,) = ep.destinations
    assert (dest.transport, dest.ipfix_version, dest.destination_address,
            dest.destination_port) == ("udp", 10, "127.0.0.1", 4739)


def test_timeouts_are_rfc6728_seconds() -> None:
    # The goflowd README sample writes activeTimeout 5000: RFC 6728 (and goflowd's own code)
    # read that as 5000 seconds, not 5 s. flowprobe keeps the number as written, in seconds.
    doc = sample("goflowd-sample.json")
    doc["cache"][0]["timeoutCache"].update(activeTimeout=5000, idleTimeout=10000)
    cache = load_data(doc).caches[0]
    assert (cache.active_timeout, cache.idle_timeout) == (5000, 10000)
    assert load(CONFIGS / "goflowd-sample.json").caches[0].active_timeout == 5


def test_time_sampling_is_microseconds() -> None:
    (sel,) = load(CONFIGS / "sampling-time.json").selection_processes[0].selectors
    assert sel == SampTimeBased(name="10 ms every 100 ms", time_interval=10_000,
                                time_space=90_000)


def test_count_sampling() -> None:
    (sel,) = load(CONFIGS / "sampling-count.json").selection_processes[0].selectors
    assert (sel.method, sel.packet_interval, sel.packet_space) == ("sampCountBased", 1, 99)


def test_rfc7951_decimal64_and_uint64_seed() -> None:
    config = load(CONFIGS / "rfc7951.json")
    (sel,) = config.selection_processes[0].selectors
    assert sel == SampUniProb(name="Half", probability=0.5, seed=42)
    op = config.observation_points[0]
    assert (op.promiscuous, op.snap_length, op.bpf_filter) == (False, 256, "ip or ip6")
    assert config.exporting_processes[0].options[0].options_type == "selectionSequence"


def test_goflowd_numbers_become_rfc7951_strings(tmp_path: Path) -> None:
    # RFC 7951 writes 64-bit integers and decimal64 as strings; goflowd writes numbers.
    doc = sample("ipfix-udp.json")
    doc["observationPoint"][0]["maxObservingPackets"] = 1000
    doc["selectionProcess"][0]["selector"] = [
        {"name": "p", "sampUniProb": {"probability": 0.25, "seed": 7}}]
    out = normalised(write(tmp_path, doc))["ietf-ipfix-psamp:ipfix"]
    assert out["observationPoint"][0]["flowprobe:maxObservingPackets"] == "1000"
    assert out["selectionProcess"][0]["selector"][0]["sampUniProb"] == {
        "probability": "0.25", "flowprobe:seed": "7"}
    config = load_data(doc)
    assert config.observation_points[0].max_observing_packets == 1000
    assert config.selection_processes[0].selectors[0] == SampUniProb(name="p", probability=0.25,
                                                                     seed=7)


def test_decimal64_is_written_canonically(tmp_path: Path) -> None:
    # libyang (yanglint) accepts only plain decimal notation in RFC 7951 decimal64 strings.
    doc = sample("ipfix-udp.json")
    doc["selectionProcess"][0]["selector"] = [
        {"name": "a", "sampUniProb": {"probability": 1e-05}},
        {"name": "b", "sampUniProb": {"probability": "2.50E-1", "seed": "0012"}}]
    out = normalised(write(tmp_path, doc))["ietf-ipfix-psamp:ipfix"]
    a, b = (s["sampUniProb"] for s in out["selectionProcess"][0]["selector"])
    assert a == {"probability": "0.00001"}
    assert b == {"probability": "0.25", "flowprobe:seed": "12"}


def test_offline_replay_augment_leaves() -> None:
    op = load(CONFIGS / "offline-replay.json").observation_points[0]
    assert (op.offline_file, op.if_names, op.snap_length, op.max_observing_packets,
            op.promiscuous) == ("pcaps/demo.pcap", (), 65535, 0, True)


def test_defaults_rfc6728_leaves_to_the_device(tmp_path: Path) -> None:
    doc = sample("ipfix-udp.json")
    for k in ("maxFlows", "activeTimeout", "idleTimeout"):
        doc["cache"][0]["timeoutCache"].pop(k)
    udp = doc["exportingProcess"][0]["destination"][0]["udpExporter"]
    for k in ("destinationPort", "ipfixVersion", "templateRefreshTimeout",
              "optionsTemplateRefreshTimeout"):
        udp.pop(k)
    config = load_data(doc)
    cache = config.caches[0]
    assert (cache.max_flows, cache.active_timeout, cache.idle_timeout) == (None, 1800, 300)
    dest = config.exporting_processes[0].destinations[0]
    assert (dest.destination_port, dest.ipfix_version, dest.template_refresh_timeout) == (
        4739, 10, 600)
    assert config.exporting_processes[0].export_mode == "parallel"


def test_ie_by_id_and_reduced_length() -> None:
    doc = sample("ipfix-udp.json")
    fields = doc["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"]
    fields[7] = {"name": "Field 8", "ieId": 1, "ieLength": 4}
    field = load_data(doc).caches[0].layout.fields[7]
    assert (field.ie_id, field.ie_name, field.ie_length) == (1, "octetDeltaCount", 4)


def test_two_pipelines_share_one_exporting_process() -> None:
    config = load_data(with_second_cache(sample("ipfix-udp.json")))
    op = config.observation_points[0]
    assert [sp.name for sp in op.selection_processes] == ["All", "Sampled"]
    c1, c2 = (sp.cache for sp in op.selection_processes)
    assert c1 is not None and c2 is not None
    assert c1.exporting_processes[0] is c2.exporting_processes[0]


def test_collecting_process() -> None:
    doc = sample("ipfix-udp.json")
    doc["collectingProcess"] = [{"name": "Relay", "udpCollector": [
        {"name": "in", "localIPAddress": ["127.0.0.1"]}], "tcpCollector": [
        {"name": "tcp-in", "localPort": 4740}], "exportingProcess": ["Export"]}]
    (cp,) = load_data(doc).collecting_processes
    assert [(e.transport, e.local_addresses, e.local_port) for e in cp.endpoints] == [
        ("udp", ("127.0.0.1",), 4739), ("tcp", (), 4740)]
    assert cp.exporting_processes[0].name == "Export"


def test_rfc7951_output_round_trips(tmp_path: Path) -> None:
    for path in SAMPLES:
        doc = normalised(path)
        assert list(doc) == ["ietf-ipfix-psamp:ipfix"]
        again = load(write(tmp_path, doc, path.name))
        assert replace(again, source="") == replace(load(path), source="")


def test_wrapped_goflowd_form_is_accepted() -> None:
    doc = sample("ipfix-udp.json")
    assert load_data({"ipfix": doc}) == load_data(doc)


def test_model_is_frozen() -> None:
    config = load(CONFIGS / "ipfix-udp.json")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.caches[0].idle_timeout = 1  # type: ignore[misc]


def test_loaded_config_is_type_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value of the wrong type from the builder stops the load (pydantic, strict), deep in
    the tree: here a list where the model says tuple, and a str where it says int. (Loaded
    past the validated-config cache: a builder changed in memory is not in its digest; one
    changed on disk is, see test_validated.)"""
    from probe.config import build

    real = build._field

    def sloppy(field):  # type: ignore[no-untyped-def]
        return dataclasses.replace(real(field), ie_length=str(field.get("ieLength", "4")))

    monkeypatch.setattr(build, "_field", sloppy)
    with pytest.raises(pydantic.ValidationError, match=r"caches\.0\.layout\.fields\.0\.ie_length"):
        load(CONFIGS / "ipfix-udp.json", cache="off")
    monkeypatch.setattr(build, "_field", real)
    real_ep = build._exporting_process
    monkeypatch.setattr(build, "_exporting_process", lambda ep: dataclasses.replace(
        real_ep(ep), destinations=list(real_ep(ep).destinations)))
    with pytest.raises(pydantic.ValidationError, match="tuple"):
        load(CONFIGS / "ipfix-udp.json", cache="off")


@pytest.mark.parametrize("version", [5, 9, 10])
@pytest.mark.parametrize("export", [None, ("udp", "127.0.0.1", 4739), ("tcp", "::1", 4739)])
def test_built_in_config_has_its_declared_types(version: int, export) -> None:  # type: ignore[no-untyped-def]
    """The built-in config skips the loader (and pydantic) at run time; it must pass the same
    check a loaded one does."""
    from probe.config.defaults import default_config
    from probe.config.model import check_types

    cfg = default_config("x.pcap", export=export, version=version)
    assert check_types(cfg) is cfg


def test_load_text_names_its_origin() -> None:
    from probe.errors import UserError
    with pytest.raises(UserError) as info:
        load_text("{}", "inline")
    assert info.value.problems == (
        "inline: /ipfix: declares nothing to run: needs an observationPoint (to meter packets) "
        "or a collectingProcess",)


def test_data_model_is_built_once() -> None:
    assert data_model() is data_model()


def test_permanent_cache_export_interval() -> None:
    doc = sample("ipfix-udp.json")
    body = doc["cache"][0].pop("timeoutCache")
    for k in ("activeTimeout", "idleTimeout"):
        body.pop(k)
    for field in body["cacheLayout"]["cacheField"]:  # cumulative counters (RFC 7012)
        field["ieName"] = field["ieName"].replace("DeltaCount", "TotalCount")
    doc["cache"][0]["permanentCache"] = body
    cache = load_data(doc).caches[0]
    assert (cache.kind, cache.export_interval, cache.active_timeout, cache.idle_timeout) == (
        "permanentCache", 60, 0, 0)
    body["exportInterval"] = 300
    assert load_data(doc).caches[0].export_interval == 300


def test_builtin_default_config_passes_the_same_ie_checks() -> None:
    from probe.config.defaults import default_config
    from probe.ie import METERED, METERED_KEYS, V5_CARRIABLE
    for version in (10, 9, 5):
        (cache,) = default_config(export=("udp", "127.0.0.1", 4739), version=version).caches
        assert set(cache.layout.key_names) <= METERED_KEYS
        assert set(cache.layout.nonkey_names) <= METERED
        if version == 5:
            assert {f.ie_name for f in cache.layout.fields} <= V5_CARRIABLE


def test_immediate_cache_has_no_keys_and_no_timeouts() -> None:
    doc = sample("ipfix-udp.json")
    body = doc["cache"][0].pop("timeoutCache")
    layout = body["cacheLayout"]
    for f in layout["cacheField"]:
        f.pop("isFlowKey", None)
    doc["cache"][0]["immediateCache"] = {"cacheLayout": layout}
    cache = load_data(doc).caches[0]
    assert (cache.kind, cache.max_flows, cache.active_timeout, cache.idle_timeout,
            cache.layout.key_names, len(cache.layout.fields)) == (
        "immediateCache", None, 0, 0, (), 9)


def test_replay_config_needs_no_capture_source() -> None:
    from probe.errors import UserError
    doc = sample("ipfix-udp.json")
    doc["observationPoint"][0].pop("ifName")
    op = load_data(doc, replay=True).observation_points[0]
    assert (op.if_names, op.offline_file) == ((), None)
    with pytest.raises(UserError, match="nothing to observe"):
        load_data(doc)


def test_filter_hash_sample_and_defaults(tmp_path: Path) -> None:
    """The sample's values reach the model; RFC 6728's defaults fill the rest (BOB, payload
    octets 0..7), a missing range end is the function's, and IPSX's output is 16 bits."""
    (sp,) = load(CONFIGS / "sampling-hash.json").selection_processes
    assert sp.selectors == (FilterHash(
        name="BOB 1 in 16", hash_function="BOB", initializer_value=2718281828,
        ip_payload_offset=0, ip_payload_size=8,
        ranges=(HashRange(name="first sixteenth", min=0, max=2**28 - 1),)),)
    assert sp.selectors[0].share == 1 / 16
    doc = sample("sampling-hash.json")
    doc["selectionProcess"][0]["selector"] = [
        {"name": "bob", "filterHash": {"selectedRange": [{"name": "top", "min": 2**31}]}},
        {"name": "ipsx", "filterHash": {"hashFunction": "IPSX",
                                        "selectedRange": [{"name": "all"}]}},
        {"name": "crc", "filterHash": {"hashFunction": "ietf-ipfix-psamp:CRC",
                                       "initializerValue": 7, "ipPayloadOffset": 20,
                                       "ipPayloadSize": 4,
                                       "selectedRange": [{"name": "a", "max": 9},
                                                         {"name": "b", "min": 20, "max": 29}]}}]
    bob, ipsx, crc = load_data(doc).selection_processes[0].selectors
    assert isinstance(bob, FilterHash) and isinstance(ipsx, FilterHash)
    assert isinstance(crc, FilterHash)
    assert (bob.hash_function, bob.initializer_value, bob.ip_payload_offset,
            bob.ip_payload_size) == ("BOB", 0, 0, 8)
    assert bob.ranges == (HashRange(name="top", min=2**31, max=2**32 - 1),) and bob.share == 0.5
    assert ipsx.ranges == (HashRange(name="all", min=0, max=65535),) and ipsx.share == 1
    assert (crc.hash_function, crc.initializer_value, crc.ip_payload_offset,
            crc.ip_payload_size, crc.share) == ("CRC", 7, 20, 4, 20 / 2**32)


def test_filter_match_values_by_type() -> None:
    doc = sample("sampling-hash.json")
    doc["selectionProcess"][0]["selector"] = [
        {"name": f"m{i}", "filterMatch": {key: ie, "value": value}}
        for i, (key, ie, value) in enumerate([
            ("ieName", "sourceIPv4Address", "192.0.2.10"),
            ("ieName", "destinationIPv6Address", "2001:db8::1"),
            ("ieName", "sourceMacAddress", "02-00-5E-10-00-01"),
            ("ieId", 4, "0x11"),
            ("ieName", "destinationTransportPort", " 53 ")])]
    got = [(s.ie_id, s.ie_name, s.value)
           for s in load_data(doc).selection_processes[0].selectors
           if isinstance(s, FilterMatch)]
    assert got == [(8, "sourceIPv4Address", 0xC000020A),
                   (28, "destinationIPv6Address", bytes.fromhex("20010db8" + "00" * 11 + "01")),
                   (56, "sourceMacAddress", 0x02005E100001),
                   (4, "protocolIdentifier", 17),
                   (11, "destinationTransportPort", 53)]
