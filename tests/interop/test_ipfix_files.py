"""IPFIX Files (RFC 5655) against other implementations: CERT's libfixbuf (ipfixDump) and
python3-ipfix read what flowprobe writes; flowprobe reads what python3-ipfix writes; and
``collect --read`` of a file gives the JSON the UDP collector gives for the same replay."""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.export.peers import have

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo.pcap"
PY = [sys.executable, "-m", "probe"]
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-ipfix is a Debian package of the system Python

pytestmark = pytest.mark.interop
needs_ipfixdump = pytest.mark.skipif(not have("ipfixDump"), reason="ipfixDump not installed "
                                     "(apt-get install libfixbuf-tools)")


def flowprobe(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PY, *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          check=False, **kw)  # type: ignore[call-overload]


def ipfixdump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ipfixDump", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def dump_stats(path: Path) -> tuple[int, Counter[int]]:
    """ipfixDump -s: the file's data records in all, and per template id."""
    r = ipfixdump("-s", "-i", str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    total = int(re.search(r"(\d+) Data Records", r.stdout).group(1))  # type: ignore[union-attr]
    per = Counter({int(tid): int(n) for tid, n in
                   re.findall(r"^\s*(\d+) \(0x[0-9a-f]+\)\|\s*(\d+)", r.stdout, re.M)})
    return total, per


def dumped_flows(path: Path) -> Counter[tuple]:
    """(src, dst, sport, dport, proto, packets, octets) of every flow record ipfixDump prints."""
    r = ipfixdump("-d", "-i", str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    flows: Counter[tuple] = Counter()
    for block in r.stdout.split("--- data record")[1:]:
        values = dict(re.findall(r"^\s*\(\d+\)(?: \(S\))?\s+(\w+) : (.*)$", block, re.M))
        if "packetDeltaCount" not in values:
            continue  # an options record
        src = values.get("sourceIPv4Address") or values.get("sourceIPv6Address")
        dst = values.get("destinationIPv4Address") or values.get("destinationIPv6Address")
        flows[(_address(src), _address(dst), int(values["sourceTransportPort"]),
               int(values["destinationTransportPort"]), int(values["protocolIdentifier"]),
               int(values["packetDeltaCount"]), int(values["octetDeltaCount"]))] += 1
    return flows


def _address(text: str | None) -> str | None:
    return None if text is None else str(ipaddress.ip_address(text))


def json_flows(lines: str) -> Counter[tuple]:
    out: Counter[tuple] = Counter()
    for line in lines.splitlines():
        f = json.loads(line)
        out[(f.get("src_addr"), f.get("dst_addr"), f["src_port"], f["dst_port"], f["proto"],
             f["packets"], f["bytes"])] += 1
    return out


@needs_ipfixdump
def test_ipfixdump_shows_every_record_written(tmp_path: Path) -> None:
    out = tmp_path / "demo.ipfix"
    assert flowprobe("replay", str(DEMO), "--export", f"file:{out}", "-q").returncode == 0
    total, per = dump_stats(out)
    read = flowprobe("collect", "--read", str(out))
    assert read.returncode == 0, read.stderr
    flows = json_flows(read.stdout)
    assert sum(flows.values()) == 38
    assert total == 38 + 2  # and the exporting process's statistics, at the head and the end
    assert sorted(per.values()) == [2, 12, 26]  # options, IPv6 flows, IPv4 flows
    assert dumped_flows(out) == flows


@pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists() or subprocess.run(
    [SYSTEM_PYTHON, "-c", "import ipfix"], capture_output=True, check=False).returncode != 0,
    reason="python3-ipfix not installed (apt-get install python3-ipfix)")
def test_python_ipfix_and_flowprobe_read_each_others_files(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.ipfix"
    script = f"""
import datetime, ipaddress, ipfix.ie, ipfix.message, ipfix.template
ipfix.ie.use_iana_default()
names = ["sourceIPv4Address", "destinationIPv4Address", "protocolIdentifier",
         "sourceTransportPort", "destinationTransportPort", "packetDeltaCount",
         "octetDeltaCount", "flowStartMilliseconds", "flowEndMilliseconds"]
m = ipfix.message.MessageBuffer()
with open({str(theirs)!r}, "wb") as f:
    for i in range(3):  # three messages of one session, the template in the first only
        m.begin_export(8)
        if i == 0:
            m.add_template(ipfix.template.from_ielist(256, ipfix.ie.spec_list(names)))
        m.export_ensure_set(256)
        m.export_namedict(dict(zip(names, [
            ipaddress.ip_address("192.0.2.%d" % (i + 1)), ipaddress.ip_address("198.51.100.1"),
            6, 1000 + i, 80, 10 + i, 1000 + i, datetime.datetime(2024, 1, 1, 0, 0, i),
            datetime.datetime(2024, 1, 1, 0, 1, i)])))
        m.set_export_time(datetime.datetime(2024, 1, 1, 0, 2))
        m.write_message(f)
"""
    subprocess.run([SYSTEM_PYTHON, "-c", script], check=True, timeout=60)
    r = flowprobe("collect", "--read", str(theirs))
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(f["src_addr"], f["src_port"], f["packets"], f["bytes"], f["sequence_num"],
             f["time_flow_start_ns"] // 10**9, f["time_received_ns"] // 10**9) for f in got] == [
        (f"192.0.2.{i + 1}", 1000 + i, 10 + i, 1000 + i, i, 1704067200 + i, 1704067320)
        for i in range(3)]
    assert "lost records 0" in r.stderr and "malformed/refused: 0" in r.stderr
    # and the other way round: python3-ipfix's ipfix2csv reads flowprobe's file
    ours = tmp_path / "ours.ipfix"
    assert flowprobe("replay", str(DEMO), "--export", f"file:{ours}", "-q").returncode == 0
    csv = subprocess.run(["ipfix2csv", "-f", str(ours), "sourceIPv4Address",
                          "destinationIPv4Address", "packetDeltaCount", "octetDeltaCount"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [line.replace('"', "").split(",") for line in csv.splitlines()[1:]]
    v4 = [r for r in rows if r[0] not in ("", "None")]
    assert len(v4) == 26 and sum(int(r[3]) for r in v4) == sum(
        f[6] for f in json_flows(flowprobe("collect", "--read", str(ours)).stdout)
        if ":" not in (f[0] or ":"))


def _config(trace: Path, destination: dict) -> dict:
    """configs/offline-replay.json reading ``trace``, exporting to ``destination``."""
    cfg = json.loads((ROOT / "configs" / "offline-replay.json").read_text())
    cfg["observationPoint"][0]["offlineFile"] = str(trace)
    cfg["exportingProcess"][0]["destination"] = [destination]
    return cfg


@pytest.mark.slow
@needs_ipfixdump
def test_a_million_packet_file_reads_whole_and_as_the_udp_collector_decodes(
        tmp_path: Path) -> None:
    """The acceptance run: a 1M-packet replay into a file that ipfixDump reads without a
    warning, showing as many records as were written; ``collect --read`` of it gives the JSON
    lines the UDP collector gives for the same export: every field but the receive time and
    the exporter's address, which a file does not have, and the sequence number of the
    message each record came in: which records share a message depends on when the cache
    hands them over, so on how the capture was cut into batches (read ahead by a child
    process or not, as the load decides). The UDP export takes the path MTU (loopback's:
    65507-octet messages), the file the same message size."""
    trace = tmp_path / "trace.pcap"
    subprocess.run([sys.executable, "-m", "tools.tracegen", str(trace), "--packets",
                    "1000000"], check=True, cwd=ROOT, capture_output=True, timeout=300)
    out = tmp_path / "trace.ipfix"
    file_cfg = tmp_path / "file.json"
    file_cfg.write_text(json.dumps(_config(trace, {"name": "File", "fileWriter": {
        "file": str(out), "maxMessageSize": 65507}})))
    r = flowprobe("run", "-c", str(file_cfg))
    assert r.returncode == 0, r.stderr
    records = int(re.search(r"records\s+(\d+)", r.stderr).group(1))  # type: ignore[union-attr]
    assert f"{records} records in" in r.stderr and "all of it is in the file" in r.stderr
    total, per = dump_stats(out)
    options = total - records
    assert records > 50_000 and 2 <= options <= 10  # flow records, and the statistics
    assert sum(n for n in per.values() if n > options) == records

    collector = subprocess.Popen([*PY, "collect", "--listen", "udp://127.0.0.1:0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=ROOT)
    try:
        assert collector.stderr is not None
        line = collector.stderr.readline()
        assert line.startswith("listening on udp://"), line
        port = int(line.rsplit(":", 1)[1])
        udp_cfg = tmp_path / "udp.json"
        udp_cfg.write_text(json.dumps(_config(trace, {"name": "UDP", "udpExporter": {
            "destinationIPAddress": "127.0.0.1", "destinationPort": port,
            "maxPacketSize": 0}})))
        sent = flowprobe("run", "-c", str(udp_cfg))
        assert sent.returncode == 0, sent.stderr
    finally:
        collector.send_signal(signal.SIGINT)
        udp_json, udp_err = collector.communicate(timeout=120)
    assert "lost records 0" in udp_err, udp_err
    read = flowprobe("collect", "--read", str(out))
    assert read.returncode == 0, read.stderr

    def lines(text: str) -> list[str]:
        out = []
        for line in text.splitlines():
            flow = json.loads(line)
            for name in ("time_received_ns", "sampler_address", "sequence_num"):
                del flow[name]
            out.append(json.dumps(flow, sort_keys=True))
        return sorted(out)

    from_file, from_udp = lines(read.stdout), lines(udp_json)
    assert len(from_file) == records
    assert from_file == from_udp
