"""The built-in config's flags (``--keys``, ``--sample``, ``--active``, ``--idle``,
``--max-flows``, ``--bpf``, ``--biflow``, ``--print-config``) as a user meets them on
``replay`` and ``run``: what they do to the flows, the config they print, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from probe.collect.collector import Collector

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo.pcap"


def flowprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def flows(*flags: str) -> list[dict]:
    out = flowprobe("replay", str(DEMO), "--format", "json", "-q", *flags)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def totals(records: list[dict], *key: str) -> Counter:
    t: Counter = Counter()
    for f in records:
        k = tuple(f.get(name) for name in key)
        t[(*k, "packets")] += f["packets"]
        t[(*k, "bytes")] += f["bytes"]
    return t


FIVE = ("src_addr", "dst_addr", "proto", "src_port", "dst_port", "icmp_type", "icmp_code")


def test_keys_levels_merge_flows_and_keep_totals() -> None:
    full = flows()
    proto, ip = flows("--keys", "proto"), flows("--keys", "ip")
    assert len(ip) < len(proto) < len(full)
    assert all("src_port" not in f and "proto" in f for f in proto)
    assert all("proto" not in f for f in ip)
    assert totals(proto, "src_addr", "dst_addr", "proto") == \
        totals(full, "src_addr", "dst_addr", "proto")
    assert totals(ip, "src_addr", "dst_addr") == totals(full, "src_addr", "dst_addr")
    assert len(proto) == len({(f["src_addr"], f["dst_addr"], f["proto"]) for f in full})


def test_timeouts_and_cache_size_split_flows_not_totals() -> None:
    full = flows()
    active = flows("--active", "1")
    small = flows("--max-flows", "4")
    assert len(active) > len(full)
    for split, reason in ((active, 2), (small, 5)):  # flowEndReason: active timeout, resources
        assert any(f["flowEndReason"] == reason for f in split)
        assert totals(split, *FIVE) == totals(full, *FIVE)
    assert not any(f["flowEndReason"] == 2 for f in flows("--active", "0"))


def test_sample_and_bpf_choose_packets() -> None:
    out = flowprobe("replay", str(DEMO), "--sample", "4", "--bpf", "tcp",
                    "--export", "udp://127.0.0.1:9")
    assert out.returncode == 0, out.stderr
    assert "selector Sampled/1 in 4: observed 218, dropped 163" in out.stdout  # 55 = ceil(218/4)
    tcp = flows("--bpf", "tcp")
    assert {f["proto"] for f in tcp} == {6}
    assert totals(tcp, *FIVE) == totals([f for f in flows() if f["proto"] == 6], *FIVE)
    sampled = flows("--sample", "4", "--version", "9")
    assert {f["sampling_rate"] for f in sampled} == {4}  # the collector scales by it
    assert sum(f["packets"] for f in sampled) == 65  # ceil(260 / 4)
    # IPFIX: the selector report goes in observation domain 0, which covers the exporter
    assert {f["sampling_rate"] for f in flows("--sample", "4")} == {4}


def test_biflow_puts_both_directions_in_one_record_and_keeps_totals() -> None:
    """--biflow, as softflowd -b: one record per conversation, the answers in RFC 5103 reverse
    IEs; unanswered flows have zeros there. Per 5-tuple, forward plus reverse are the
    unidirectional totals; to NetFlow v9 each goes as two one-way records again."""
    uni, bi, v9 = flows(), flows("--biflow"), flows("--biflow", "--version", "9")
    assert len(bi) < len(uni) and all(f["biflowDirection"] == 1 for f in bi)
    back: list[dict] = []
    for f in bi:
        if f["reversePacketDeltaCount"]:
            port = {"src_port": f.get("dst_port"), "dst_port": f.get("src_port")}
            if f["proto"] in (1, 58):  # ICMP type and code stay: part of the key
                port = {"src_port": f.get("src_port"), "dst_port": f.get("dst_port")}
            back.append({**f, "src_addr": f["dst_addr"], "dst_addr": f["src_addr"], **port,
                         "packets": f["reversePacketDeltaCount"],
                         "bytes": f["reverseOctetDeltaCount"]})
    assert back and totals(bi + back, *FIVE) == totals(uni, *FIVE)
    assert "reversePacketDeltaCount" not in v9[0] and totals(v9, *FIVE) == totals(uni, *FIVE)
    assert sum(1 for f in bi if not f["reversePacketDeltaCount"]) == len(bi) - len(back)


def _collect(args: list[str]) -> Counter:
    with Collector(["udp://127.0.0.1:0"]) as collector:
        out = flowprobe(*[a.replace("PORT", str(collector.port)) for a in args])
        assert out.returncode == 0, out.stderr
        collector.wait_idle()
        collector.stop()
        return totals(list(collector.records()), *FIVE, "flowEndReason")


def test_printed_config_runs_the_same_probe(tmp_path: Path) -> None:
    """What --print-config prints validates, and `run -c` of it sends what the flags send."""
    flags = ["--export", "udp://127.0.0.1:PORT", "--keys", "proto", "--active", "2",
             "--idle", "1", "--max-flows", "5", "--bpf", "ip or ip6", "--biflow"]
    replayed = _collect(["replay", str(DEMO), *flags, "-q"])
    with Collector(["udp://127.0.0.1:0"]) as collector:
        printed = flowprobe("replay", str(DEMO), "--print-config",
                            *[f.replace("PORT", str(collector.port)) for f in flags])
        assert printed.returncode == 0, printed.stderr
        cfg = tmp_path / "printed.json"
        cfg.write_text(printed.stdout)
        valid = flowprobe("validate", str(cfg))
        assert valid.returncode == 0 and "valid" in valid.stdout, valid.stderr
        doc = json.loads(printed.stdout)
        assert doc["observationPoint"][0]["offlineFile"] == str(DEMO)
        assert doc["observationPoint"][0]["bpfFilter"] == "ip or ip6"
        ran = flowprobe("run", "-c", str(cfg))
        assert ran.returncode == 0, ran.stderr
        collector.wait_idle()
        collector.stop()
        from_file = totals(list(collector.records()), *FIVE, "flowEndReason")
    assert replayed and from_file == replayed


def test_run_one_liner_prints_a_live_config() -> None:
    out = flowprobe("run", "-i", "eth0", "-i", "eth1", "--export", "udp://[::1]:2055",
                    "--version", "9", "--sample", "100", "--print-config")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [op["ifName"] for op in doc["observationPoint"]] == [["eth0"], ["eth1"]]
    assert doc["selectionProcess"][0]["selector"][0]["sampCountBased"] == {
        "packetInterval": 1, "packetSpace": 99}
    exporter = doc["exportingProcess"][0]["destination"][0]["udpExporter"]
    assert exporter.items() >= {
        "ipfixVersion": 9, "destinationIPAddress": "::1", "destinationPort": 2055}.items()


@pytest.mark.parametrize(("args", "message"), [
    (["run"], "flowprobe run: give -c CONFIG, or -i INTERFACE --export URL"),
    (["run", "-i", "eth0"], "flowprobe run: -i needs --export udp://HOST:PORT, "
                            "tcp://HOST:PORT or file:PATH (where the flow records go)"),
    (["run", "-i", "eth0", "--export", "tcp://127.0.0.1:2055", "--version", "9"],
     "--export tcp://127.0.0.1:2055 --version 9: NetFlow v9 cannot go over TCP"),
    (["run", "-i", "eth0", "--export", "file:/tmp/x.ipfix", "--version", "5", "--print-config"],
     "--export file:/tmp/x.ipfix: an IPFIX File (RFC 5655) holds IPFIX messages; --version 5 "
     "cannot be written to a file"),
    (["run", "-i", "eth0", "--export", "file:/tmp/x.ipfix", "--workers", "2"],
     "--workers 2: destination file:/tmp/x.ipfix is a fileWriter, and an IPFIX File takes one "
     "writer"),
    (["run", "-c", "configs/ipfix-udp.json", "-i", "eth0", "--keys", "ip"],
     "flowprobe run: -c and -i, --keys do not mix: the config file says all of that "
     "(--print-config without -c writes the flags as a config file)"),
    (["run", "-c", "configs/ipfix-udp.json", "--print-config"],
     "flowprobe run: -c and --print-config do not mix: the file is the config already "
     "(`flowprobe validate --rfc7951 FILE` prints it normalised)"),
    (["replay", "pcaps/demo.pcap", "-c", "configs/ipfix-udp.json", "--idle", "5"],
     "flowprobe replay: -c and --idle do not mix: the config file says all of that "
     "(--print-config without -c writes the flags as a config file)"),
    (["replay", "pcaps/demo.pcap", "--print-config"],
     "flowprobe replay: --print-config needs --export URL: without it replay sends to its "
     "own collector, which a config file cannot name"),
    (["run", "-i", "eth0", "--export", "udp://h"], "--export udp://h: missing :PORT"),
    (["replay", "pcaps/demo.pcap", "--sample", "0"],
     "argument --sample: '0': a whole number from 1 to 4294967295"),
    (["replay", "pcaps/demo.pcap", "--bpf", "tcp port"],
     "pcaps/demo.pcap: bad BPF filter 'tcp port'"),
])
def test_bad_flags_are_one_line_errors(args: list[str], message: str) -> None:
    out = flowprobe(*args)
    assert out.returncode == 2
    assert message in out.stderr.strip().splitlines()[-1], out.stderr
    assert "Traceback" not in out.stderr
