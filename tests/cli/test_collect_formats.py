"""``flowprobe collect --format bin|json --mapping --context`` as a user runs it: the same
datagrams (IPFIX, v9, v5 from a replay, sFlow) sent to a collector per format."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.l2 import Ether

from probe.format import flow_pb2
from tests.format import protoc, sources
from tests.format.test_context import GOFLOW2PLUS
from tests.format.test_mapping import SAMPLE
from tests.format.test_proto import expected

PY = [sys.executable, "-m", "probe", "collect"]


def _collect(tmp_path: Path, *args: str, name: str = "out",
             listen: str = "flow://127.0.0.1:0") -> tuple[bytes, str]:
    out = tmp_path / name
    proc = subprocess.Popen([*PY, "--listen", listen, "--output", str(out), *args],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    before = ""
    line = proc.stderr.readline()
    while line and not line.startswith("listening on"):
        before += line
        line = proc.stderr.readline()
    assert line.startswith("listening on flow://127.0.0.1:"), before
    port = int(line.split("?")[0].rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for dg in sources.all_datagrams():
            s.sendto(dg, ("127.0.0.1", port))
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out.read_bytes(), before + err


@pytest.mark.skipif(shutil.which("protoc") is None, reason="protoc not installed")
def test_bin_and_json_collectors_write_the_same_flows(tmp_path: Path) -> None:
    binary, err = _collect(tmp_path, "--format", "bin", name="flows.bin")
    text, _ = _collect(tmp_path, "--format", "json", name="flows.json")
    assert "output: bin: sFlow counter records not written 1" in err
    flows = [json.loads(x) for x in text.decode().splitlines()]
    flows = [f for f in flows if f.get("sample_type") != "counters"]
    decoded = protoc.decode(binary, tmp_path)
    assert len(decoded) == len(flows) > 100
    for got, flow in zip(decoded, flows, strict=True):
        # two collectors, two clocks: every field but the time each one received it
        want = expected(flow)
        for d in (got, want):
            d.pop("time_received_ns")
            if flow["type"] == "SFLOW_5":  # sFlow's flow times are the time received
                d.pop("time_flow_start_ns")
                d.pop("time_flow_end_ns")
        assert got == want


@pytest.mark.skipif(shutil.which("protoc") is None, reason="protoc not installed")
def test_workers_encode_what_one_process_does(tmp_path: Path) -> None:
    """With ?count=2 each worker formats its batches and the parent writes them."""
    args = ("--format", "bin", "--context", str(_context_file(tmp_path)))
    one, _ = _collect(tmp_path, *args, name="one.bin")
    two, err = _collect(tmp_path, *args, name="two.bin", listen="flow://127.0.0.1:0?count=2")
    assert "output: bin: sFlow counter records not written 1" in err  # from a worker

    def comparable(stream: bytes) -> list[str]:
        out = []
        for m in protoc.split(stream):
            msg = flow_pb2.FlowMessage.FromString(m)
            for f in ("time_received_ns", "time_flow_start_ns", "time_flow_end_ns"):
                msg.ClearField(f)
            out.append(msg.SerializeToString().hex())
        return sorted(out)

    assert comparable(one) == comparable(two) and len(comparable(one)) > 100


def _context_file(tmp_path: Path) -> Path:
    path = tmp_path / "context.yaml"
    path.write_text(GOFLOW2PLUS + "  - name: documentation\n    cidr: [192.0.2.0/24, "
                    "203.0.113.0/24, 198.51.100.0/24, 2001:db8:2::/48]\n")
    return path


@pytest.mark.skipif(not SAMPLE.exists(), reason="goflow2's sample mapping not here")
def test_mapping_and_context_shape_the_lines(tmp_path: Path) -> None:
    context = _context_file(tmp_path)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(SAMPLE.read_text().replace("formatter:\n", "formatter:\n  rename:\n"
                                                  "    src_mac: src_macaddr\n", 1)
                       .replace("    - dst_mac\n", "    - dst_mac\n    - context\n", 1))
    text, err = _collect(tmp_path, "--mapping", str(mapping), "--context", str(context))
    assert str(mapping) not in err  # the sflow section is applied: nothing to say about it
    lines = [json.loads(x) for x in text.decode().splitlines()]
    flows = [f for f in lines if f.get("sample_type") != "counters"]
    assert {"type", "time_received_ns", "src_addr", "icmp_name"} <= set(flows[0])
    assert all(set(f) <= {*SAMPLE_FIELDS, "src_macaddr", "context"} for f in flows)
    assert all(isinstance(f["time_received_ns"], str) for f in flows)  # datetimenano
    sflow = [f for f in flows if f["type"] == "SFLOW_5"]
    assert sflow[0]["src_macaddr"] == "02:00:00:00:00:01" and "src_mac" not in sflow[0]
    assert sflow[0]["context"] == {
        "source_group": "web-servers", "source_labels": {"application": "web",
                                                         "tier": "frontend"},
        "destination_group": "database-servers",
        "destination_labels": {"application": "database", "tier": "backend"}}
    assert sflow[1]["context"] == {"source_group": "lab", "source_labels": {"site": "lab"},
                                   "destination_group": "documentation"}
    # the sample's sflow entries: the TCP and the UDP checksum of the sampled packets
    tcp, udp6 = (Ether(f) for f in sources.sflow_frames())
    assert [f["csum"] for f in sflow] == [tcp[TCP].chksum, udp6[UDP].chksum]
    demo = [f for f in flows if f["type"] == "IPFIX"]
    # the demo's IPv4 addresses are documentation ones, its IPv6 ones in 2001:db8::/32,
    # some of them in the lab's /48 (the longer prefix)
    assert {(f["etype"], f["context"]["source_group"]) for f in demo} == \
        {(0x800, "documentation"), (0x86DD, "corporate"), (0x86DD, "lab")}
    icmp = [f for f in demo if f["icmp_name"] != "unknown"]
    assert {f["icmp_name"] for f in icmp} >= {"Echo", "EchoReply"}


SAMPLE_FIELDS = ("type", "time_received_ns", "sequence_num", "sampling_rate", "flow_direction",
                 "sampler_address", "time_flow_start_ns", "time_flow_end_ns", "bytes",
                 "packets", "src_addr", "src_net", "dst_addr", "dst_net", "etype", "proto",
                 "src_port", "dst_port", "in_if", "out_if", "src_mac", "dst_mac", "icmp_name",
                 "csum")


def _fails(*args: str) -> str:
    r = subprocess.run([*PY, "--listen", "udp://127.0.0.1:0", *args], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    return r.stderr.strip()


def test_bad_mapping_context_and_options_are_one_line(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("formatter:\n  fields: [type, src_adr]\n")
    assert _fails("--mapping", str(m)).startswith(
        f"{m}: formatter.fields: no field named 'src_adr'")
    c = tmp_path / "c.yaml"
    c.write_text("networks:\n  - {name: a, cidr: 300.0.0.0/8}\n")
    assert _fails("--context", str(c)).startswith(f"{c}: networks[0].cidr: ")
    assert _fails("--mapping", str(tmp_path / "none.yaml")) == \
        f"{tmp_path / 'none.yaml'}: No such file or directory"
    assert _fails("--format", "text", "--transport", "nats").startswith("--format text is")
    assert _fails("--transport", "nats", "--nats-subject", "flows.{sampler}") == \
        "--nats-subject flows.{sampler}: no field named 'sampler'"
    assert _fails("--transport", "nats", "--nats-subject", "flows.>") .startswith(
        "--nats-subject flows.>: not a subject")
    assert _fails("--transport", "nats", "--nats-subject", "f.{key}") == \
        "--nats-subject f.{key}: {key} needs a --mapping with formatter.key"
