"""CERT's ipfixDump (libfixbuf 2.4), a strict IPFIX reader written apart from tshark and nfdump,
reads flowprobe's export of every sample config, over UDP and over TCP, and shows exactly the
records the cache expired, field for field; the options records are what was sent. tshark
finds nothing to warn about in the same UDP export.

The traffic is a generated trace with MPLS, PPPoE and every tunnel kind, so the MPLS and tunnel
IEs of ``configs/tunnels.json`` carry values. Where ipfixDump and the RFC differ on how to
print a value, the expectation says so (``_shown``): by the bytes, what flowprobe sends is
the RFC's.
"""

from __future__ import annotations

import ipaddress
import json
import re
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dpkt
import pcapy
import pytest

from probe.cache.records import RecordBatch
from probe.config import load_data
from probe.ie import REVERSE_PEN, by_id
from probe.pipeline import Pipeline
from tests.export.peers import ENV, TcpCollector, dumpcap, have, tshark_expert, udp_sink
from tests.export.wire import Decoder, split_stream
from tests.helpers import RecordingSink
from tools import encap, tracegen

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("ipfixDump"), reason="needs ipfixDump "
                                 "(apt-get install libfixbuf-tools)")]

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("*.json"))


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ipfixdump") / "t.pcap"
    tracegen.generate(path, 4000, seed=9, snaplen=encap.MIN_SNAPLEN,
                      mix=tracegen.Mix(ipv6=0.4, vlan=0.2),
                      encap={kind: 0.08 for kind in encap.KINDS})
    return path


def _config(path: Path, trace: Path, transport: str, port: int) -> Any:
    """The sample, reading ``trace`` and exporting IPFIX to 127.0.0.1:``port``."""
    doc = json.loads(path.read_text())
    rfc = "ietf-ipfix-psamp:ipfix" in doc
    body = doc.get("ietf-ipfix-psamp:ipfix", doc)
    for op in body["observationPoint"]:
        op.pop("ifName", None)
        op[("flowprobe:" if rfc else "") + "offlineFile"] = str(trace)
    for ep in body["exportingProcess"]:
        for dest in ep["destination"]:
            for kind in ("udpExporter", "tcpExporter", "fileWriter"):
                dest.pop(kind, None)
            dest[f"{transport}Exporter"] = {"ipfixVersion": 10, "destinationPort": port,
                                            "destinationIPAddress": "127.0.0.1"}
    return load_data(doc, path.name)


def _meter(config: Any) -> list[RecordBatch]:
    sink = RecordingSink()
    pipe = Pipeline(config)
    pipe.attach(sink)
    pipe.run(handle_signals=False)
    return sink.records


# ------------------------------------------------------------------------------ ipfixDump
_FIELD = re.compile(r"^\t\((?:(\d+)/)?(\d+)\)(?: \(S\))?\s+(\S+) : (.*)$")
_TID = re.compile(r"tid:\s+(\d+) ")


def ipfixdump(stream: Path) -> list[tuple[int, list[tuple[int, int, str]]]]:
    """Every data record ipfixDump shows: (template id, [(enterprise, id, value as shown)])."""
    out = subprocess.run(["ipfixDump", "--hexdump=65535", "-i", str(stream)], capture_output=True,
                         text=True, env=ENV, timeout=120, check=True).stdout
    records: list[tuple[int, list[tuple[int, int, str]]]] = []
    in_data = False
    for line in out.splitlines():
        if line.startswith("--- "):
            in_data = line.startswith("--- data record")
        elif in_data and (m := _TID.search(line)):
            records.append((int(m.group(1)), []))
        elif in_data and (m := _FIELD.match(line)):
            records[-1][1].append((int(m.group(1) or 0), int(m.group(2)), m.group(4)))
    return records


def _ipv6(raw: bytes) -> str:
    # libfixbuf compresses the longest zero run and writes every other group with 4 digits
    return ":".join(g.zfill(4) if g else "" for g in ipaddress.IPv6Address(raw).compressed
                    .split(":"))


def _time(seconds: float, digits: int) -> str:
    text = datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%d %H:%M:%S")
    return text + (f".{round(seconds % 1 * 10 ** digits):0{digits}d}" if digits else "")


def _shown(pen: int, ie_id: int, length: int, value: int | bytes) -> str:
    """A value as ipfixDump prints it, from what flowprobe puts on the wire."""
    ie = by_id(ie_id, pen)
    assert ie is not None
    kind = ie.data_type
    raw = value if isinstance(value, bytes) else int(value).to_bytes(length, "big")
    if (pen and pen != REVERSE_PEN) or kind == "octetArray":
        # An IE libfixbuf does not know (ntop's; it knows RFC 5103's reverse IEs, and shows
        # them as their forward IEs), or an octetArray: up to 8 octets it prints
        # them as one integer in the host's byte order (octets reversed on x86; RFC 7011 gives
        # octetArray no number), longer ones in hex (--hexdump).
        return str(int.from_bytes(raw, "little")) if length <= 8 else \
            f"(len: {length}) 0x{raw.hex()}"
    number = int.from_bytes(raw, "big")
    if kind == "float64":
        return str(struct.unpack(">d" if length == 8 else ">f", raw)[0])
    if kind == "ipv4Address":
        return str(ipaddress.IPv4Address(number))
    if kind == "ipv6Address":
        return _ipv6(raw)
    if kind == "macAddress":
        return ":".join(f"{b:02x}" for b in raw)
    if kind == "dateTimeSeconds":
        return _time(number, 0)
    if kind == "dateTimeMilliseconds":
        return _time(number / 1000, 3)
    if kind == "dateTimeMicroseconds":
        # ipfixDump 2.4 prints the seconds and six zeros whatever the fraction: the fraction
        # flowprobe sends (RFC 7011 §6.1.9, its low 11 bits zero) is checked by tshark in
        # test_export_tshark_layouts.
        return _time((number >> 32) - 2_208_988_800, 0) + ".000000"
    return str(number)


def _wire(rb: RecordBatch, i: int, name: str, length: int) -> int | bytes:
    """The value of field ``name`` of record ``i`` as the exporter encodes it."""
    ie_name = name
    col = rb.columns[ie_name]
    v = col[i]
    if col.ndim == 2:
        return bytes(v)
    ie = next(f for f in rb.fields if f.ie_name == ie_name)
    spec = by_id(ie.ie_id, ie.enterprise_number)
    assert spec is not None
    if spec.data_type == "dateTimeMicroseconds":
        us = int(v)
        units = ((us % 1_000_000) * 2**21 + 999_999) // 1_000_000
        return ((us // 1_000_000 + 2_208_988_800) << 32) | (units << 11)
    full = spec.length or length
    number = int(v)
    if length < full:  # reduced-size encoding: counters saturate, the rest keep low bits
        top = (1 << (8 * length)) - 1
        number = min(number, top) if spec.semantics in ("deltaCounter", "totalCounter") \
            else number & top
    return number


def _expected(batches: list[RecordBatch]) -> list[tuple]:
    rows = []
    for rb in batches:
        for i in range(len(rb)):
            row = []
            for f in rb.fields:
                spec = by_id(f.ie_id, f.enterprise_number)
                assert spec is not None
                length = f.ie_length or spec.length or 0
                row.append((f.enterprise_number, f.ie_id,
                            _shown(f.enterprise_number, f.ie_id, length,
                                   _wire(rb, i, f.ie_name, length))))
            rows.append(tuple(row))
    return sorted(rows)


def _options_sent(messages: list[bytes]) -> list[tuple]:
    """The options records flowprobe sent, as the test's own wire decoder reads them."""
    d = Decoder()
    rows = []
    for msg in messages:
        m = d.decode(msg)
        for tid, rec in m.options:
            specs, _ = d.templates[(10, m.header["domain"], tid)]
            rows.append(tuple((0, ie, _shown(0, ie, ln, rec[ie])) for ie, ln in specs))
    return sorted(rows)


def _check(stream: Path, messages: list[bytes], batches: list[RecordBatch]) -> None:
    shown = ipfixdump(stream)
    options = {tid for m in [Decoder()] for msg in messages
               for tid, _ in m.decode(msg).options}
    flows = sorted(tuple(fields) for tid, fields in shown if tid not in options)
    assert batches and flows == _expected(batches)
    got_options = sorted(tuple(fields) for tid, fields in shown if tid in options)
    assert got_options == _options_sent(messages)
    # the reliability record, at the start and with the final totals at the end (the issue:
    # ipfixDump read exportedFlowRecordTotalCount 0 when two domains shared template 256)
    exported = [int(v) for rec in got_options for pen, ie, v in rec if (pen, ie) == (0, 42)]
    assert len(exported) >= 2 and max(exported) == sum(len(b) for b in batches)


@pytest.mark.skipif(not have("dumpcap", "tshark"), reason="needs dumpcap and tshark")
@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_ipfixdump_reads_every_sample_over_udp(tmp_path: Path, trace: Path, config: Path) -> None:
    cap = tmp_path / "export.pcap"
    with udp_sink() as sink:
        port = sink.getsockname()[1]
        with dumpcap(cap, f"udp port {port}"):
            batches = _meter(_config(config, trace, "udp", port))
    expert = tshark_expert(cap, f"udp.port=={port},cflow")
    assert "Warns" not in expert and "Errors" not in expert, expert
    messages = []
    reader = pcapy.open_offline(str(cap))  # dumpcap writes pcapng
    while True:
        hdr, frame = reader.next()
        if hdr is None:
            break
        udp = dpkt.ethernet.Ethernet(frame).data.data  # lo is Ethernet-framed
        if udp.dport == port:
            messages.append(bytes(udp.data))
    stream = tmp_path / "export.ipfix"
    stream.write_bytes(b"".join(messages))
    _check(stream, messages, batches)


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_ipfixdump_reads_every_sample_over_tcp(tmp_path: Path, trace: Path, config: Path) -> None:
    coll = TcpCollector().start()
    try:
        batches = _meter(_config(config, trace, "tcp", coll.port))
    finally:
        coll.stop()
    (stream,) = [bytes(s) for s in coll.streams]
    path = tmp_path / "export.ipfix"
    path.write_bytes(stream)
    _check(path, split_stream(stream), batches)


# tshark's names for the tunnel IEs: Wireshark knows ntop's enterprise IEs by their numbers,
# so this also checks flowprobe sends the numbers nProbe does, for the meaning it claims.
_TSHARK_TUNNEL = {
    "cflow.pie.ntop.tunnel_id": "UPSTREAM_TUNNEL_ID",
    "cflow.pie.ntop.untunneled_protocol": "UNTUNNELED_PROTOCOL",
    "cflow.pie.ntop.untunneled_l4_dst_port": "UNTUNNELED_L4_DST_PORT",
    "cflow.pie.ntop.untunneled_ipv4_src_addr": "UNTUNNELED_IPV4_SRC_ADDR",
    "cflow.pie.ntop.untunneled_ipv4_dst_addr": "UNTUNNELED_IPV4_DST_ADDR",
    "cflow.pie.ntop.untunneled_ipv6_src_addr": "UNTUNNELED_IPV6_SRC_ADDR",
    "cflow.pie.ntop.untunneled_ipv6_dst_addr": "UNTUNNELED_IPV6_DST_ADDR",
    "cflow.gre_key": "greKey", "cflow.layer2_segment_id": "layer2SegmentId",
    "cflow.mpls_top_label_ttl": "mplsTopLabelTTL",
}


@pytest.mark.skipif(not have("dumpcap", "tshark"), reason="needs dumpcap and tshark")
def test_tshark_names_the_tunnel_ies_as_meant(tmp_path: Path, trace: Path) -> None:
    from tests.export.peers import tshark_flows

    cap = tmp_path / "tunnels.pcap"
    with udp_sink() as sink:
        port = sink.getsockname()[1]
        with dumpcap(cap, f"udp port {port}"):
            batches = _meter(_config(REPO / "configs" / "tunnels.json", trace, "udp", port))
    expected = []
    for rb in batches:
        for i in range(len(rb)):
            row = []
            for name in _TSHARK_TUNNEL.values():
                v = rb.columns[name][i]
                if name.startswith("UNTUNNELED_IPV6"):
                    row.append(str(ipaddress.IPv6Address(bytes(v))))
                elif name.startswith("UNTUNNELED_IPV4"):
                    row.append(str(ipaddress.IPv4Address(int(v))))
                else:
                    row.append(str(int(v)))
            expected.append(tuple(row))
    flows = [f for f in tshark_flows(cap, f"udp.port=={port},cflow") if "cflow.gre_key" in f]
    got = sorted(tuple(f[k] for k in _TSHARK_TUNNEL) for f in flows)
    assert got == sorted(expected)
    assert sum(1 for row in expected if row[1] != "0") > 50  # tunnelled flows were exported
