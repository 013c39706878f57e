"""tshark, the reference decoder, reads every committed capture the way our decoder does.

Per IP frame, in capture order: version, addresses, protocol, IP length, TTL/hop limit,
TOS/traffic class, outermost VLAN, TCP/UDP ports and TCP flags. Reassembly is off in tshark so
a non-first fragment shows no ports there either.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from probe.capture import PacketBatch, open_offline

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
FIELDS = (
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ip.len", "ip.ttl", "ip.dsfield",
    "ipv6.plen", "ipv6.hlim", "ipv6.tclass", "vlan.id", "tcp.srcport", "tcp.dstport",
    "tcp.flags", "udp.srcport", "udp.dstport", "sctp.srcport", "sctp.dstport", "ieee8021ad.id",
    "frame.protocols",
)
# malformed.pcap is built to be rejected in ways tshark reports differently (it still shows a
# source address for a header we count as too short); its counts are checked in tests/capture.
FILES = sorted(p.name for p in PCAPS.glob("*.pcap*") if p.name != "malformed.pcap")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]


def _tshark_rows(path: Path) -> list[dict[str, str]]:
    cmd = ["tshark", "-n", "-r", str(path), "-o", "ip.defragment:FALSE",
           "-o", "ipv6.defragment:FALSE", "-T", "fields", "-E", "occurrence=f",
           "-E", "separator=|"]
    for field in FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [dict(zip(FIELDS, line.split("|"), strict=True)) for line in out.splitlines()]
    return [row for row in rows if row["ip.src"] or row["ipv6.src"]]


def _ours(batch: PacketBatch, i: int) -> dict[str, object]:
    v6 = int(batch.ip_version[i]) == 6
    width = 16 if v6 else 4
    proto = int(batch.proto[i])
    first_fragment = int(batch.fragment[i]) != 2
    tcp = proto == 6 and first_fragment
    ported = proto in (6, 17, 132, 136) and first_fragment
    return {
        "src": str(ipaddress.ip_address(bytes(batch.src_addr[i][:width]))),
        "dst": str(ipaddress.ip_address(bytes(batch.dst_addr[i][:width]))),
        "ip_len": int(batch.ip_len[i]),
        "ttl": int(batch.ttl[i]),
        "tos": int(batch.tos[i]),
        "vlan": int(batch.vlan_id[i]),
        "ports": (int(batch.src_port[i]), int(batch.dst_port[i])) if ported else None,
        "tcp_flags": int(batch.tcp_flags[i]) if tcp else None,
    }


def _theirs(row: dict[str, str]) -> dict[str, object]:
    protos = row["frame.protocols"].split(":")
    first_ip = next(p for p in protos if p in ("ip", "ipv6"))
    v6 = first_ip == "ipv6"
    upper = next((p for p in protos if p in ("tcp", "udp", "udplite", "sctp")), None)
    ports = None
    if upper:
        fields = "udp" if upper == "udplite" else upper  # tshark shares UDP's port fields
        ports = (int(row[f"{fields}.srcport"]), int(row[f"{fields}.dstport"]))
    tcp = upper == "tcp"
    return {
        "src": row["ipv6.src"] if v6 else row["ip.src"],
        "dst": row["ipv6.dst"] if v6 else row["ip.dst"],
        "ip_len": 40 + int(row["ipv6.plen"]) if v6 else int(row["ip.len"]),
        "ttl": int(row["ipv6.hlim"] if v6 else row["ip.ttl"]),
        "tos": int(row["ipv6.tclass"] if v6 else row["ip.dsfield"], 16),
        "vlan": int(row["ieee8021ad.id"] or row["vlan.id"] or 0),
        "ports": ports,
        "tcp_flags": int(row["tcp.flags"] or "0", 16) if tcp else None,
    }


@pytest.mark.parametrize("name", FILES)
def test_decode_agrees_with_tshark(name):
    with open_offline(str(PCAPS / name)) as source:
        batch = PacketBatch.concat(list(source.batches()))
    rows = _tshark_rows(PCAPS / name)
    assert len(rows) == len(batch) > 0
    for i, row in enumerate(rows):
        ours, theirs = _ours(batch, i), _theirs(row)
        # snaplen64.pcap's IPv6/TCP frames keep 10 octets of TCP header: both read the ports
        # (the first 4) and neither the flags (octet 13).
        assert theirs == ours, f"{name} IP frame {i}"


def test_snaplen64_exports_the_captured_ports():
    """The issue-17 case end to end: IPv6/TCP frames cut 10 octets into the TCP header are
    exported with their ports (one flow each way, every packet), as tshark reads them."""
    import json
    import sys
    from collections import Counter

    path = PCAPS / "snaplen64.pcap"
    out = subprocess.run([sys.executable, "-m", "probe", "replay", str(path), "-q",
                          "--format", "json"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    flows = Counter()
    for line in out.splitlines():
        f = json.loads(line)
        if f["proto"] == 6 and ":" in f["src_addr"]:
            flows[(f["src_port"], f["dst_port"])] += f["packets"]
    theirs = Counter()
    for row in _tshark_rows(path):
        if row["ipv6.src"] and row["tcp.srcport"]:
            theirs[(int(row["tcp.srcport"]), int(row["tcp.dstport"]))] += 1
    assert flows == theirs == Counter({(50000, 443): 25, (443, 50000): 23})
