"""MPLS, PPPoE, VLAN in MPLS and every tunnel kind, end to end on a generated trace.

With every tunnel switched on, flowprobe's per-5-tuple totals are the generator's inner totals;
with none, its totals are the generator's outer totals and, for every flow softflowd meters,
softflowd's. softflowd 1.1.0 meters MPLS and every tunnel's outer packet but neither PPPoE nor
an Ethernet pseudowire: the flows it lacks are exactly those. tshark decodes the same trace
frame by frame to the same innermost packet, label, tag, tunnel id and outer addresses.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import numpy as np
import pytest

from probe.config.model import TUNNELS
from tests.capture.helpers import read_all
from tests.export.peers import have
from tests.helpers import CORPUS
from tests.interop.test_softflowd_totals import ours, softflowd_retry
from tools import encap, tracegen

pytestmark = pytest.mark.interop

SHARES = {kind: 0.1 for kind in encap.KINDS}
Key = tuple[int, str, str, int, int]


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("encap") / "encap.pcap"
    summary = tracegen.generate(path, 20_000, seed=5, snaplen=encap.MIN_SNAPLEN,
                                mix=tracegen.Mix(ipv6=0.35, vlan=0.2), totals=True,
                                encap=SHARES)
    assert all(n > 50 for n in summary["encap"].values()), summary["encap"]
    return path, summary


def _truth(totals: np.ndarray, octets: str = "ip_octets") -> dict[Key, tuple[int, int]]:
    out = {}
    for r in totals:
        w = 16 if r["ip_version"] == 6 else 4
        key = (int(r["proto"]), str(ipaddress.ip_address(bytes(r["src"][:w]))),
               str(ipaddress.ip_address(bytes(r["dst"][:w]))), int(r["sport"]), int(r["dport"]))
        out[key] = (int(r["packets"]), int(r[octets]))
    return out


def meter(path: Path, tunnels: tuple[str, ...]) -> tuple[dict[Key, tuple[int, int]], dict]:
    """flowprobe's records summed per 5-tuple (ICMP type/code in dport), and what it ignored."""
    totals = ours(path, tunnels=tunnels)
    _, stats = read_all(path, tunnels=tunnels)
    return {k[:5]: (totals[(*k[:5], "p")], totals[(*k[:5], "b")]) for k in totals}, dict(
        stats.ignored)


def test_every_tunnel_opened_gives_the_inner_totals(trace: tuple[Path, dict]) -> None:
    path, summary = trace
    mine, ignored = meter(path, TUNNELS)
    assert ignored == {}
    assert mine == _truth(summary["totals"])


def test_nothing_opened_gives_the_outer_totals(trace: tuple[Path, dict]) -> None:
    path, summary = trace
    mine, ignored = meter(path, ())
    assert ignored == {}
    assert mine == _truth(summary["outer_totals"])
    assert len(mine) < len(_truth(summary["totals"]))  # tunnels fold conversations together


@pytest.mark.parametrize("kind", encap.TUNNELS)
def test_one_tunnel_opened_leaves_the_others_outer(tmp_path: Path, kind: str) -> None:
    """A trace of one tunnel kind (and plain traffic): its switch alone opens it, every other
    switch leaves it as the outer packet."""
    path = tmp_path / "one.pcap"
    s = tracegen.generate(path, 3000, seed=11, snaplen=encap.MIN_SNAPLEN, totals=True,
                          mix=tracegen.Mix(ipv6=0.5), encap={kind: 0.6})
    inner, outer = _truth(s["totals"]), _truth(s["outer_totals"])
    assert inner != outer
    assert meter(path, (encap.SWITCH[kind],))[0] == inner
    assert meter(path, tuple(t for t in TUNNELS if t != encap.SWITCH[kind]))[0] == outer


SOFTFLOWD_OPENS = tuple(k for k in encap.KINDS if k not in ("pppoe", "vlan-mpls"))


@pytest.mark.skipif(not have("softflowd", "nfcapd", "nfdump"),
                    reason="softflowd, nfcapd and nfdump are needed")
def test_outer_totals_equal_softflowds(tmp_path: Path) -> None:
    """Every kind softflowd 1.1.0 meters (MPLS, and every tunnel as its outer packet): the
    same flows, packet for packet. Its octets are the frame less the Ethernet header and tag
    (MPLS labels included), ours the IP total length: both what the generator says."""
    path = tmp_path / "sf.pcap"
    s = tracegen.generate(path, 10_000, seed=6, snaplen=encap.MIN_SNAPLEN, totals=True,
                          mix=tracegen.Mix(ipv6=0.35, vlan=0.2),
                          encap={k: 0.1 for k in SOFTFLOWD_OPENS})
    mine, _ = meter(path, ())
    theirs = softflowd_retry(path, tmp_path / "nf")
    assert theirs is not None
    sf = {k[:5]: (theirs[(*k[:5], "p")], theirs[(*k[:5], "b")]) for k in theirs}
    assert {k: v[0] for k, v in mine.items()} == {k: v[0] for k, v in sf.items()}
    assert mine == _truth(s["outer_totals"])
    assert sf == _truth(s["outer_totals"], "l2_octets")


@pytest.mark.skipif(not have("softflowd", "nfcapd", "nfdump"),
                    reason="softflowd, nfcapd and nfdump are needed")
def test_softflowd_meters_no_pppoe_and_no_pseudowire(tmp_path: Path) -> None:
    """Why those two are left out above: softflowd 1.1.0 opens neither."""
    path = tmp_path / "ppp.pcap"
    tracegen.generate(path, 2000, seed=7, snaplen=encap.MIN_SNAPLEN,
                      encap={"pppoe": 0.5, "vlan-mpls": 0.5})
    mine, _ = meter(path, ())
    theirs = softflowd_retry(path, tmp_path / "nf")
    assert theirs is not None and mine
    assert {k[:5] for k in theirs} < set(mine)  # only the plain conversations


# ---------------------------------------------------------------------------- tshark
FIELDS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt", "ip.len",
          "ipv6.plen", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "frame.protocols", "mpls.label", "vlan.id", "vxlan.vni", "geneve.vni", "gtp.teid",
          "gre.key")


_TUNNEL_ID = {"gre": "gre.key", "vxlan": "vxlan.vni", "geneve": "geneve.vni", "gtp": "gtp.teid"}


def _tshark(path: Path) -> list[dict[str, list[str]]]:
    cmd = ["tshark", "-n", "-r", str(path), "-o", "ip.defragment:FALSE",
           "-o", "ipv6.defragment:FALSE", "-T", "fields", "-E", "occurrence=a",
           "-E", "separator=|", "-E", "aggregator=,"]
    # tshark's pseudowire heuristic takes a control word followed by a tagged frame for a
    # frame without one: its labels are named (RFC 4385: a first nibble of 0 is the CW).
    for label in encap.PW_LABELS.tolist():
        cmd += ["-d", f"mpls.label=={label},pwethcw"]
    for field in FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [{f: v.split(",") if v else [] for f, v in zip(FIELDS, line.split("|"), strict=True)}
            for line in out.splitlines()]


def _text(col: np.ndarray, i: int, v6: bool) -> str:
    return str(ipaddress.ip_address(bytes(col[i][:16 if v6 else 4])))


def _metered(protos: list[str]) -> int:
    """Where in tshark's protocol list the packet flowprobe meters starts: the last IP header
    before any ICMP (an ICMP error quotes an IP header it does not travel in)."""
    stop = next((j for j, p in enumerate(protos) if p in ("icmp", "icmpv6")), len(protos))
    return max(j for j, p in enumerate(protos[:stop]) if p in ("ip", "ipv6"))


def agree(path: Path, tunnels: tuple[str, ...] = TUNNELS) -> list[str]:
    """Frames where tshark and flowprobe (opening ``tunnels``) disagree on the metered packet's
    addresses, length and ports, the first MPLS label and VLAN, and for a tunnelled packet on
    the outermost tunnel's addresses and id."""
    batch, stats = read_all(path, tunnels=tunnels)
    rows = [r for r in _tshark(path) if r["ip.src"] or r["ipv6.src"]]
    assert len(rows) == len(batch), (len(rows), len(batch), stats.ignored)
    problems = []
    for i, row in enumerate(rows):
        protos = row["frame.protocols"][0].split(":")
        at = _metered(protos)
        fam, v6 = protos[at], protos[at] == "ipv6"
        n = protos[:at].count(fam)  # which occurrence of its fields
        theirs = {
            "src": row[f"{fam}.src"][n], "dst": row[f"{fam}.dst"][n],
            "ip_len": 40 + int(row["ipv6.plen"][n]) if v6 else int(row["ip.len"][n]),
            # the first label and tag on the way to the metered packet
            "label": int(row["mpls.label"][0]) if "mpls" in protos[:at] else 0,
            "vlan": int(row["vlan.id"][0]) if "vlan" in protos[:at] else 0,
        }
        ours = {
            "src": _text(batch.src_addr, i, v6), "dst": _text(batch.dst_addr, i, v6),
            "ip_len": int(batch.ip_len[i]), "label": int(batch.mpls_labels[i, 0]) >> 12,
            "vlan": int(batch.vlan_id[i]),
        }
        upper = [j for j, p in enumerate(protos) if j > at and p in ("tcp", "udp")]
        if upper and "icmp" not in protos[at:upper[0]]:
            p, m = protos[upper[0]], protos[:upper[0]].count(protos[upper[0]])
            theirs["ports"] = (int(row[f"{p}.srcport"][m]), int(row[f"{p}.dstport"][m]))
            ours["ports"] = (int(batch.src_port[i]), int(batch.dst_port[i]))
        ips = [p for p in protos[:at] if p in ("ip", "ipv6")]
        if ips:  # a tunnel: its outer addresses and id
            o6 = ips[0] == "ipv6"
            theirs["outer"] = (row[f"{ips[0]}.src"][0], row[f"{ips[0]}.dst"][0])
            ours["outer"] = (_text(batch.outer_src, i, o6), _text(batch.outer_dst, i, o6))
            # the outermost tunnel's id (tshark also decodes a plain datagram to 4789 as VXLAN)
            kinds = [p for p in protos if p in _TUNNEL_ID]
            ids = row[_TUNNEL_ID[kinds[0]]] if kinds else []
            theirs["id"] = int(ids[0], 0) if ids else 0
            ours["id"] = int(batch.tunnel_id[i])
        if theirs != ours:
            problems.append(f"frame {i + 1} {row['frame.protocols'][0]}: {theirs} != {ours}")
    return problems


@pytest.mark.skipif(not have("tshark"), reason="tshark not installed")
def test_tshark_finds_the_same_inner_packets_labels_and_tunnels(trace: tuple[Path, dict]
                                                                 ) -> None:
    assert agree(trace[0]) == []


CORPUS_AGREE = (
    "vxlan.pcap", "geneve.pcap", "gso-ipv4-vxlan-ipv4.pcap", "gso-ipv4-vxlan-ipv6.pcap",
    "gso-ipv6-vxlan-ipv4.pcap", "gso-ipv4-geneve-ipv4.pcap", "gso-ipv6-geneve-ipv6.pcap",
    "mpls-ldp-hello.pcap", "mpls-traceroute.pcap", "lspping-fec-rsvp.pcap",
    "tok2str-oobr-2.pcap", "wccp_redirect_gre.pcap", "erspan-type-i-1.pcap",
    "erspan-type-i-2.pcap", "erspan-type-i-3.pcap", "erspan-type-i-4.pcap",
    "erspan-type-ii-1.pcap", "erspan-type-ii-2.pcap", "erspan-type-iii-ft-7.pcap",
    "vxlan_port_8472.pcap",
)
# Where tshark stops at the outer packet and flowprobe does not, and why (by the bytes).
CORPUS_OUTER_ONLY_IN_TSHARK = {
    # BIG TCP / TSO send-side captures: IP length 0 means "as long as the frame" (decode.py);
    # tshark does not dissect past an IPv4 total length or IPv6 payload length of 0.
    name: "zero IP length" for name in ("bigtcp-ipv4-vxlan-ipv4.pcap",
                                        "bigtcp-ipv6-geneve-ipv4.pcap",
                                        "bigtcp-ipv6-vxlan-ipv4.pcap",
                                        "bigtcp-ipv6-vxlan-ipv6.pcap")
}
# Where tshark opens what flowprobe does not: VXLAN-GPE (UDP 4790) with NSH.
CORPUS_INNER_ONLY_IN_TSHARK = ("nsh-over-vxlan-gpe.pcap",)


@pytest.mark.skipif(not have("tshark"), reason="tshark not installed")
@pytest.mark.parametrize("name", CORPUS_AGREE)
def test_real_captures_decode_like_tshark(name: str) -> None:
    assert agree(CORPUS / name) == []


@pytest.mark.skipif(not have("tshark"), reason="tshark not installed")
@pytest.mark.parametrize("name", [*CORPUS_OUTER_ONLY_IN_TSHARK, *CORPUS_INNER_ONLY_IN_TSHARK])
def test_real_captures_where_tshark_differs(name: str) -> None:
    """Each frame differs, and only in which packet is the metered one: one decoder's metered
    packet is the other's outer one."""
    batch, _ = read_all(CORPUS / name, tunnels=TUNNELS)
    rows = [r for r in _tshark(CORPUS / name) if r["ip.src"] or r["ipv6.src"]]
    assert len(rows) == len(batch) > 0
    for i, row in enumerate(rows):
        protos = row["frame.protocols"][0].split(":")
        first = protos[next(j for j, p in enumerate(protos) if p in ("ip", "ipv6"))]
        last = protos[_metered(protos)]
        if name in CORPUS_OUTER_ONLY_IN_TSHARK:  # tshark's only IP is our outer one
            assert batch.tunnel_kind[i] and row[f"{first}.src"] == [
                _text(batch.outer_src, i, first == "ipv6")]
        else:  # tshark's outer IP is the one we meter
            assert not batch.tunnel_kind[i] and row[f"{first}.src"][0] == _text(
                batch.src_addr, i, first == "ipv6") != row[f"{last}.src"][-1]


def test_replay_verifies_the_tunnel_and_mpls_ies(trace: tuple[Path, dict], tmp_path: Path
                                                 ) -> None:
    """``flowprobe replay -c configs/tunnels.json --verify``: the forked reader opens the
    tunnels, the bundled collector decodes the enterprise IEs and the 3-octet label sections,
    and every field equals the cache's; NetFlow v9 cannot carry the enterprise IEs."""
    import json
    import sys

    path, _ = trace
    doc = json.loads((Path(__file__).resolve().parents[2] / "configs" / "tunnels.json")
                     .read_text())
    del doc["observationPoint"][0]["ifName"]
    doc["observationPoint"][0]["offlineFile"] = str(path)
    cfg = tmp_path / "tunnels.json"
    cfg.write_text(json.dumps(doc))
    cmd = [sys.executable, "-m", "probe", "replay", str(path), "-c", str(cfg), "--verify", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "verify: OK" in r.stderr, r.stderr
    first = json.loads(r.stdout.splitlines()[0])
    assert {"UPSTREAM_TUNNEL_ID", "UNTUNNELED_IPV4_SRC_ADDR", "mplsTopLabelStackSection"} <= set(
        first)
    tunnelled = [json.loads(line) for line in r.stdout.splitlines()
                 if '"UNTUNNELED_PROTOCOL":0' not in line]
    assert tunnelled and all(f["UNTUNNELED_PROTOCOL"] in (4, 17, 41, 47) for f in tunnelled)
    r = subprocess.run([*cmd[:-2], "--version", "9", "-q"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "NetFlow v9 cannot carry UPSTREAM_TUNNEL_ID" in r.stderr
