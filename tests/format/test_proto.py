"""goflow2's binary format: the vendored flow.proto and its generated module agree, and what
``--format bin`` writes decodes with ``protoc --decode flowpb.FlowMessage flow.proto`` to the
values ``--format json`` writes for the same flows, field for field."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from probe.collect import FlowBatch
from probe.collect.columns import const, per_row, u64
from probe.collect.flows import column_values
from probe.format import flow_pb2
from probe.format.mapping import parse
from probe.format.produce import Producer
from probe.format.proto import ADDRESS_FIELDS, MAC_FIELDS, MESSAGE_FIELDS, BinFormat, is_repeated
from probe.format.render import JsonFormat
from tests.format import protoc, sources
from tests.helpers import SHARED

pytestmark = pytest.mark.skipif(shutil.which("protoc") is None, reason="protoc not installed")


def test_generated_module_is_the_vendored_proto(tmp_path: Path) -> None:
    out = tmp_path / "flow.desc"
    subprocess.run(["protoc", f"-I{protoc.FORMAT_DIR}", f"--descriptor_set_out={out}",
                    "flow.proto"], check=True)
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(flow_pb2.DESCRIPTOR.serialized_pb)
    for f in compiled.message_type[0].field:  # protoc adds the JSON names gencode leaves out
        f.ClearField("json_name")
    assert committed == compiled
    reference = SHARED / "reference" / "goflow2"
    if reference.exists():  # vendored unmodified, with its licence
        assert (protoc.FORMAT_DIR / "flow.proto").read_bytes() == \
            (reference / "flow.proto").read_bytes()
        assert (protoc.FORMAT_DIR / "LICENSE.goflow2").read_bytes() == \
            (reference / "LICENSE").read_bytes()


def expected(flow: dict) -> dict[str, list]:
    """What protoc must print for a JSON line: its FlowMessage fields, proto3's way (zero
    values and empty lists are not on the wire)."""
    out: dict[str, list] = {}
    for name, v in flow.items():
        f = MESSAGE_FIELDS.get(name)
        if f is None:
            continue
        values = v if is_repeated(f) else [v]
        if name in ADDRESS_FIELDS:
            values = [socket.inet_pton(socket.AF_INET6 if ":" in x else socket.AF_INET, x)
                      for x in values]
        elif name in MAC_FIELDS:
            values = [int(x.replace(":", ""), 16) for x in values]
        if name == "type" or any(x not in (0, b"") for x in values):
            out[name] = values
    return out


def _both(batches: list[FlowBatch], mapping_yaml: dict | None = None
          ) -> tuple[bytes, list[dict], BinFormat]:
    m = parse(mapping_yaml or {})
    binary, js = BinFormat(m.protobuf), JsonFormat(m)
    stream = binary.chunk(batches)
    lines = [json.loads(x) for x in js.chunk(batches).decode().splitlines()]
    return stream, lines, binary


def test_bin_decodes_to_the_json_values_field_for_field(tmp_path: Path) -> None:
    batches = sources.decoded()
    assert {b.type for b in batches} == {"IPFIX", "NETFLOW_V9", "NETFLOW_V5", "SFLOW_5"}
    stream, lines, binary = _both(batches)
    flows = [f for f in lines if f.get("sample_type") != "counters"]
    assert len(lines) - len(flows) == 1  # the sFlow counter record is no FlowMessage
    assert binary.notes == {"bin: sFlow counter records not written": 1}
    decoded = protoc.decode(stream, tmp_path)
    assert len(decoded) == len(flows) > 100
    for got, flow in zip(decoded, flows, strict=True):
        assert got == expected(flow), flow
    # Every kind of FlowMessage field the decoders fill went through: addresses of both
    # families, MACs, repeated fields, the enum.
    seen = {k for d in decoded for k in d}
    assert {"src_addr", "next_hop", "bgp_next_hop", "src_mac", "as_path", "bgp_communities",
            "ipv6_flow_label", "src_vlan", "in_if", "observation_domain_id"} <= seen
    assert {d["type"][0] for d in decoded} == {"IPFIX", "NETFLOW_V9", "NETFLOW_V5", "SFLOW_5"}


def test_mapping_fields_reach_consumers_that_compile_them(tmp_path: Path) -> None:
    mapping = {"formatter": {"protobuf": [
        {"name": "flow_end_reason", "index": 1001, "type": "varint"},
        {"name": "source_group", "index": 1002, "type": "string"},
        {"name": "tags", "index": 1003, "type": "varint", "array": True}]},
        "ipfix": {"mapping": [{"field": 136, "destination": "flow_end_reason"},
                              {"field": 136, "destination": "tags"},
                              {"field": 4, "destination": "tags"}]}}
    batches = [b for b in sources.decoded() if b.type == "IPFIX"]
    producer = Producer(parse(mapping))
    for b in batches:
        producer.apply(b)
        b.columns["context"] = const({"source_group": "web-servers",
                                      "source_labels": {"tier": "x"}}, b.n)
    reasons = [r for b in batches for r in column_values(b.raw["flowEndReason"], False)]
    stream, lines, _ = _both(batches, mapping)
    proto = protoc.extended_proto(tmp_path, ["uint64 flow_end_reason = 1001;",
                                             "bytes source_group = 1002;",
                                             "repeated uint64 tags = 1003 [packed=false];"])
    decoded = protoc.decode(stream, tmp_path, proto)
    for got, line, reason in zip(decoded, lines, reasons, strict=True):
        assert line["flow_end_reason"] == reason and line["tags"] == [reason, line["proto"]]
        assert got["flow_end_reason"] == [reason]
        assert got["tags"] == [reason, line["proto"]]
        assert got["source_group"] == [b"web-servers"]
    # goflow2 writes arrays unpacked: each element is its own varint field (tag 1003 << 3 | 0)
    first = protoc.split(stream)[0]
    tag = bytes([(1003 << 3 | 0) & 0x7F | 0x80, (1003 << 3) >> 7])
    assert first.count(tag) == 2
    # and a consumer with goflow2's own flow.proto still reads the rest, skipping them
    plain = protoc.decode(stream, tmp_path)
    assert [d["bytes"] for d in plain] == [[x["bytes"]] for x in lines]


def test_values_a_field_cannot_hold_are_counted_not_raised() -> None:
    b = FlowBatch(2, "IPFIX", {
        "type": const("IPFIX", 2), "in_if": u64(np.array([1 << 40, 7])),
        "bytes": u64(np.array([5, 6])), "src_addr": per_row(["not-an-ip", "10.0.0.1"]),
        "proto": const("tcp", 2)}, {})
    fmt = BinFormat()
    first, second = (flow_pb2.FlowMessage.FromString(m)
                     for m in protoc.split(fmt.chunk([b])))
    assert (first.bytes, first.in_if, first.src_addr, first.proto) == (5, 0, b"", 0)
    assert (second.bytes, second.in_if, second.src_addr) == (6, 7, bytes([10, 0, 0, 1]))
    assert fmt.notes == {"bin: in_if left out": 1, "bin: src_addr left out": 1,
                         "bin: proto left out": 1}
