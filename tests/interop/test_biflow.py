"""Biflows (RFC 5103) as independent decoders and softflowd see them.

A generated 200k-packet trace goes through ``configs/biflow.json``'s cache; tshark decodes the
export with no expert warning, and the forward plus reverse counters it shows add up, per
5-tuple, to what the generator wrote. To NetFlow v9, which has no reverse IEs, each biflow goes
as two one-way records with the same totals. softflowd -b, fed the same trace, finds as many
biflows.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.export.peers import dumpcap, have, tshark, tshark_expert, udp_sink
from tests.helpers import ROOT
from tools import tracegen

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("dumpcap", "tshark"), reason="needs dumpcap and tshark")]

PACKETS = 200_000
CONFIG = ROOT / "configs" / "biflow.json"
Key = tuple[int, str, str, int, int]


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Key, tuple[int, int]]]:
    path = tmp_path_factory.mktemp("biflow") / "t.pcap"
    summary = tracegen.generate(path, PACKETS, seed=4, totals=True)
    want: dict[Key, tuple[int, int]] = {}
    for r in summary["totals"]:
        n = 4 if r["ip_version"] == 4 else 16
        key = (int(r["proto"]), str(ipaddress.ip_address(bytes(r["src"][:n]))),
               str(ipaddress.ip_address(bytes(r["dst"][:n]))), int(r["sport"]), int(r["dport"]))
        want[key] = (int(r["packets"]), int(r["ip_octets"]))
    return path, want


def _export(pcap: Path, cap: Path, version: int) -> str:
    """Replay ``pcap`` through the biflow config to a UDP port captured into ``cap``; the
    tshark decode-as for it."""
    with udp_sink() as sink:
        port = sink.getsockname()[1]
        with dumpcap(cap, f"udp port {port}"):
            subprocess.run([sys.executable, "-m", "probe", "replay", str(pcap), "-c", str(CONFIG),
                            "--export", f"udp://127.0.0.1:{port}", "--version", str(version),
                            "--rate", "0", "-q"], check=True, capture_output=True, timeout=300)
    return f"udp.port=={port},cflow"


def _records(cap: Path, decode_as: str) -> list[dict]:
    """Every data record tshark decodes, duplicate fields (forward, reverse) as lists."""
    out = []
    doc = json.loads(tshark("-r", str(cap), "-d", decode_as, "-T", "json",
                            "--no-duplicate-keys") or "[]")
    for pkt in doc:
        cflows = pkt["_source"]["layers"].get("cflow")
        for cf in (cflows if isinstance(cflows, list) else [cflows]) if cflows else []:
            for sub in cf.values():
                if isinstance(sub, dict):
                    out += [v for k, v in sub.items() if k.startswith("Flow")
                            and isinstance(v, dict) and ("cflow.srcaddr" in v
                                                         or "cflow.srcaddrv6" in v)]
    return out


def _both(v: str | list[str]) -> list[str]:
    return v if isinstance(v, list) else [v]


def _totals(records: list[dict]) -> dict[Key, tuple[int, int]]:
    """Per-5-tuple packets and octets, a biflow's reverse counters under its reversed tuple
    (ICMP's type and code stay: they are part of the key, as the generator counts them)."""
    out: dict[Key, tuple[int, int]] = {}

    def add(key: Key, packets: int, octets: int) -> None:
        p, o = out.get(key, (0, 0))
        out[key] = (p + packets, o + octets)

    for r in records:
        src = r.get("cflow.srcaddr") or r["cflow.srcaddrv6"]
        dst = r.get("cflow.dstaddr") or r["cflow.dstaddrv6"]
        proto = int(r["cflow.protocol"])
        sport, dport = int(r.get("cflow.srcport", 0)), int(r.get("cflow.dstport", 0))
        if proto == 1:
            sport, dport = 0, int(r["cflow.icmp_type_code_ipv4"], 16)
        elif proto == 58:  # tshark shows IPFIX's icmpTypeCodeIPv6 as its two octets, v9's (139)
            sport = 0       # under the IPv4 name
            dport = (int(r["cflow.icmp_ipv6_type"]) << 8 | int(r["cflow.icmp_ipv6_code"])
                     if "cflow.icmp_ipv6_type" in r else int(r["cflow.icmp_type_code_ipv4"], 16))
        packets, octets = _both(r["cflow.packets"]), _both(r["cflow.octets"])
        add((proto, src, dst, sport, dport), int(packets[0]), int(octets[0]))
        if len(packets) == 2 and int(packets[1]):
            back = (proto, dst, src, sport, dport) if proto in (1, 58) else \
                (proto, dst, src, dport, sport)
            add(back, int(packets[1]), int(octets[1]))
    return out


def _decoded(pcap: Path, tmp_path: Path, version: int) -> list[dict]:
    """The records of ``pcap``'s biflow export in ``version``, as tshark decodes them, once it
    has said the export is free of expert warnings."""
    cap = tmp_path / f"v{version}.pcap"
    decode_as = _export(pcap, cap, version)
    expert = tshark_expert(cap, decode_as)
    assert "Warns" not in expert and "Errors" not in expert, expert
    return _records(cap, decode_as)


def test_tshark_decodes_biflows_to_the_generated_totals(trace, tmp_path: Path) -> None:
    pcap, want = trace
    records = _decoded(pcap, tmp_path, 10)
    assert all(r["cflow.biflow_direction"] == "1" for r in records)
    answered = sum(1 for r in records if len(_both(r["cflow.packets"])) == 2
                   and int(_both(r["cflow.packets"])[1]))
    assert len(records) < len(want) and answered > len(records) // 2
    assert _totals(records) == want


def test_netflow_v9_gets_two_one_way_records_per_answered_biflow(trace, tmp_path: Path) -> None:
    pcap, want = trace
    records = _decoded(pcap, tmp_path, 9)
    assert all(not isinstance(r["cflow.packets"], list) for r in records)
    assert "cflow.biflow_direction" not in records[0]
    assert _totals(records) == want


@pytest.mark.skipif(not have("softflowd"), reason="needs softflowd")
def test_softflowd_b_finds_as_many_biflows(trace, tmp_path: Path) -> None:
    """softflowd (always bidirectional inside, -b for biflow records) and a flowprobe biflow
    cache with no timeouts find the same conversations. With timeouts the two part ways for a
    reason of softflowd's: reading a file it applies its timeouts on the wall clock, so in a
    replay that takes a second nothing ever times out, while flowprobe runs on packet time."""
    pcap, _ = trace
    doc = json.loads(CONFIG.read_text())
    body = doc["cache"][0].pop("naturalCache")
    body.update(activeTimeout=0, idleTimeout=0)
    doc["cache"][0]["timeoutCache"] = body
    untimed = tmp_path / "untimed.json"
    untimed.write_text(json.dumps(doc))
    ours = []
    for config in (untimed, CONFIG):
        out = subprocess.run([sys.executable, "-m", "probe", "replay", str(pcap), "-c",
                              str(config), "--format", "json", "-q"], check=True,
                             capture_output=True, text=True, timeout=300).stdout
        ours.append(len(out.splitlines()))
    with udp_sink() as sink:
        log = subprocess.run(["softflowd", "-r", str(pcap), "-b", "-v", "10", "-6", "-d", "-c",
                              "none", "-m", "65536", "-t", "maxlife=99999999",
                              "-n", f"127.0.0.1:{sink.getsockname()[1]}"],
                             capture_output=True, text=True, timeout=300)
    theirs = int(re.search(r"Flows exported: (\d+)", log.stdout + log.stderr).group(1))  # type: ignore[union-attr]
    assert ours[0] == theirs
    assert ours[1] > theirs  # idle and active timeouts on packet time split some
