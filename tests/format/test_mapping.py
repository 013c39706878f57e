"""The mapping file as goflow2 means it, tested with goflow2's own sample ``mapping.yaml``:
formatter fields, key, rename, render and protobuf fields; IPFIX and NetFlow v9 field
entries (enterprise numbers, little-endian values) into new and existing fields; and every
mistake a one-line error."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from probe.collect import Decoder, FlowBatch
from probe.collect.columns import HEX, IPV4, MAC, Column, const, u64
from probe.format import mapping
from probe.format.produce import Producer
from probe.format.render import JsonFormat
from tests.collect.wire import (
    ipfix_message,
    ipfix_set,
    ipfix_template,
    ipv4,
    v9_packet,
    v9_template,
)
from tests.format.errors import one_line
from tests.helpers import SHARED

SAMPLE = SHARED / "reference" / "goflow2" / "mapping.yaml"
needs_sample = pytest.mark.skipif(not SAMPLE.exists(), reason="goflow2's sample not here")


def _ipfix_with_mapped_fields() -> bytes:
    """IPv4 flow with flowDirection (61), biflowDirection (239), the VRF ids (234, 235),
    ICMP echo, and Juniper's enterprise field 137 (PEN 2636, 4 octets)."""
    fields = [(8, 4), (12, 4), (4, 1), (32, 2), (2, 8), (1, 8), (61, 1), (239, 1), (234, 4),
              (235, 4), (137, 4, 2636)]
    rec = struct.pack(">IIBHQQBBIII", ipv4("10.0.0.1"), ipv4("10.0.0.2"), 1, 8 << 8, 3, 252, 1,
                      2, 7, 9, 0xCAFE)
    return ipfix_message([ipfix_set(2, ipfix_template(256, fields)), ipfix_set(256, rec)])


def _v9_with_sampling_little_endian() -> bytes:
    """v9 flow whose exporter writes samplingInterval (34) little-endian, as goflow2's sample
    mapping expects of some devices: 1024 as 00 04 00 00."""
    fields = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 4), (1, 4), (34, 4), (61, 1)]
    rec = struct.pack(">IIBHHII", ipv4("10.0.0.3"), ipv4("10.0.0.4"), 6, 1000, 80, 5, 500) + \
        bytes([0, 4, 0, 0, 1])
    return v9_packet([ipfix_set(0, v9_template(300, fields)), ipfix_set(300, rec)])


def _decoded() -> list[FlowBatch]:
    """The IPFIX batch, then the v9 one."""
    d = Decoder()
    d.feed(_ipfix_with_mapped_fields(), "192.0.2.9")
    d.feed(_v9_with_sampling_little_endian(), "192.0.2.9")
    batches = d.flush()
    assert [b.type for b in batches] == ["IPFIX", "NETFLOW_V9"]
    return batches


def _lines(fmt: JsonFormat, batches: list[FlowBatch]) -> list[dict]:
    return [json.loads(x) for x in fmt.chunk(batches).splitlines()]


@needs_sample
def test_goflow2_sample_mapping_loads_as_written() -> None:
    m = mapping.load(SAMPLE)
    assert m.fields[:4] == ("type", "time_received_ns", "sequence_num", "sampling_rate")
    assert m.fields[-2:] == ("icmp_name", "csum") and m.key == ("sampler_address",)
    assert [(c.name, c.index, c.type) for c in m.protobuf] == [
        ("flow_direction", 42, "varint"), ("bi_flow_direction", 41, "varint"),
        ("ingress_vrf_id", 39, "varint"), ("egress_vrf_id", 40, "varint"),
        ("csum", 999, "varint")]
    assert m.render == {"time_received_ns": "datetimenano"}
    assert [(f.field, f.raw_name, f.destination) for f in m.ipfix] == [
        (61, "flowDirection", "flow_direction"), (239, "biflowDirection", "bi_flow_direction"),
        (234, "ingressVRFID", "ingress_vrf_id"), (235, "egressVRFID", "egress_vrf_id")]
    assert [(f.field, f.little_endian) for f in m.netflowv9] == [(34, True), (61, False)]
    assert [(s.layer, s.offset, s.length, s.destination) for s in m.sflow] == [
        ("udp", 48, 16, "csum"), ("tcp", 128, 16, "csum")]
    assert [(p.proto, p.direction, p.port, p.parser, p.tunnel) for p in m.sflow_ports] == [
        ("udp", "dst", 3544, "teredo-dst", None), ("udp", "both", 4754, "gre", None),
        ("udp", "both", 6081, "geneve", "geneve")]
    assert mapping.port_notes(m) == []  # no encap entry reads inside what is not opened


@needs_sample
def test_goflow2_sample_mapping_shapes_the_json() -> None:
    m = mapping.load(SAMPLE)
    batches = _decoded()
    for b in batches:
        Producer(m).apply(b)
    ipfix, v9 = _lines(JsonFormat(m), batches)
    # only the listed fields, in the listed order, those a flow has
    order = [f for f in m.fields if f in ipfix]
    assert list(ipfix) == order
    assert ipfix["flow_direction"] == 1 and ipfix["icmp_name"] == "Echo"
    assert ipfix["time_received_ns"].endswith("Z") and "T" in ipfix["time_received_ns"]
    assert "observation_domain_id" not in ipfix  # not listed
    assert "bi_flow_direction" not in ipfix  # mapped, but not among the fields to print
    (whole,) = _lines(JsonFormat(), batches[:1])
    assert (whole["bi_flow_direction"], whole["ingress_vrf_id"], whole["egress_vrf_id"]) == \
        (2, 7, 9)
    assert v9["sampling_rate"] == 1024  # little-endian, as the mapping says
    assert v9["flow_direction"] == 1 and v9["icmp_name"] == "unknown"


def test_field_entries_with_enterprise_numbers_and_existing_fields() -> None:
    m = mapping.parse({
        "formatter": {"protobuf": [{"name": "juniper_properties", "index": 1001,
                                    "type": "varint", "array": True}]},
        "ipfix": {"mapping": [
            {"field": 137, "pen": 2636, "penprovided": True, "destination":
             "juniper_properties"},
            {"field": 234, "destination": "in_if"},  # an existing FlowMessage field
            {"field": 12, "destination": "next_hop"}]}})
    batches = _decoded()
    for b in batches:
        Producer(m).apply(b)
    f, v9 = _lines(JsonFormat(), batches)
    assert f["juniper_properties"] == [0xCAFE] and f["in_if"] == 7
    assert f["next_hop"] == "10.0.0.2"  # an address field gets an address's text
    assert "juniper_properties" not in v9  # v9 flows: the ipfix section only


def test_rename_and_renderers() -> None:
    m = mapping.parse({"formatter": {
        "fields": ["type", "src_addr", "src_net", "dst_mac", "etype", "proto", "bytes",
                   "time_flow_start_ns", "sampler_address", "label", "icmp_name"],
        "rename": {"src_addr": "source", "dst_mac": "dst_macaddr"},
        "render": {"src_net": "network", "etype": "etype", "proto": "proto",
                   "dst_mac": "none", "time_flow_start_ns": "datetime",
                   "sampler_address": "none", "label": "string"}},
        "ipfix": {"mapping": [{"field": 82, "destination": "label"}]}})
    b = FlowBatch(2, "IPFIX", {
        "type": const("IPFIX", 2), "src_addr": Column(IPV4, np.array([0x0A010203, 0x0A020304],
                                                                      np.uint32)),
        "src_net": u64(np.array([16, 8])), "dst_mac": Column(MAC, np.array([0x02000000000A] * 2,
                                                                           np.uint64)),
        "etype": u64(np.array([0x86DD, 0x800])), "proto": u64(np.array([6, 99])),
        "bytes": u64(np.array([9, 1])),
        "time_flow_start_ns": u64(np.array([1_700_000_000_123_456_789] * 2)),
        "sampler_address": Column(IPV4, np.array([0x7F000001] * 2, np.uint32)),
        "label": Column(HEX, np.frombuffer(b"uplinkdownlk", np.uint8).reshape(2, 6))}, {})
    assert _lines(JsonFormat(m), [b]) == [
        {"type": "IPFIX", "source": "10.1.2.3", "src_net": "10.1.0.0/16",
         "dst_macaddr": 0x02000000000A, "etype": "IPv6", "proto": "TCP", "bytes": 9,
         "time_flow_start_ns": "2023-11-14T22:13:20Z", "sampler_address": "7f000001",
         "label": "uplink", "icmp_name": "unknown"},
        {"type": "IPFIX", "source": "10.2.3.4", "src_net": "10.0.0.0/8",
         "dst_macaddr": 0x02000000000A, "etype": "IPv4", "proto": "99", "bytes": 1,
         "time_flow_start_ns": "2023-11-14T22:13:20Z", "sampler_address": "7f000001",
         "label": "downlk", "icmp_name": "unknown"}]
    nano = mapping.parse({"formatter": {"render": {"time_received_ns": "datetimenano"}}})
    t = FlowBatch(1, "IPFIX", {"time_received_ns": u64(np.array([1_700_000_000_120_000_000]))},
                  {})
    assert _lines(JsonFormat(nano), [t]) == [{"time_received_ns": "2023-11-14T22:13:20.12Z"}]


@pytest.mark.parametrize(("doc", "message"), [
    ("formatter:\n  fields: [src_adr]\n",
     "formatter.fields: no field named 'src_adr' (not in flow.proto, formatter.protobuf, a "
     "mapping destination or the IANA registry)"),
    ("formatter:\n  key: [exporter]\n", "formatter.key: no field named 'exporter'"),
    ("formatter:\n  render: {src_addr: ipv4}\n", "formatter.render.src_addr: 'ipv4' is not a "
     "renderer"),
    ("formatter:\n  rename: {srcaddr: x}\n", "formatter.rename: no field named 'srcaddr'"),
    ("formatter:\n  protobuf:\n    - {name: x, index: 20, type: varint}\n",
     "formatter.protobuf[0].index: 20 is taken by proto"),
    ("formatter:\n  protobuf:\n    - {name: src_port, index: 2000}\n",
     "formatter.protobuf[0].name: 'src_port' is already a field of FlowMessage"),
    ("formatter:\n  protobuf:\n    - {name: x, index: 2000, type: float}\n",
     "formatter.protobuf[0].type: 'float' is not varint, string or bytes"),
    ("ipfix:\n  mapping:\n    - {field: 61}\n", "ipfix.mapping[0].destination: None is not"),
    ("netflowv9:\n  mapping:\n    - {field: 1, pen: 9, destination: x}\n",
     "netflowv9.mapping[0].pen: NetFlow v9 fields have no enterprise number"),
    ("sflow:\n  mapping:\n    - {layer: 5, offset: 0, length: 8, destination: x}\n",
     "sflow.mapping[0].layer: 5 is not one of"),
    ("formater:\n  fields: []\n", "the file: unknown key 'formater'"),
    ("formatter:\n  fields: [a\n", "not valid YAML"),
])
def test_a_mistake_is_one_line(tmp_path: Path, doc: str, message: str) -> None:
    line = one_line(mapping.load, tmp_path / "m.yaml", doc)
    assert line.startswith(f"{tmp_path / 'm.yaml'}: ") and message in line, line


def test_known_names_beyond_flow_proto() -> None:
    m = mapping.parse({"formatter": {"fields": ["flowEndReason", "context", "icmp_name",
                                                "if_counters", "new_one"]},
                       "ipfix": {"mapping": [{"field": 300, "destination": "new_one"}]}})
    assert m.fields[-1] == "new_one"
