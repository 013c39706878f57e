"""``flowprobe replay``: the summary a user reads, exporting, and one-line errors (exit 2)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo.pcap"


def flowprobe(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def field(out: str, label: str) -> int:
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith(label)]
    return int(line.split()[-1])


def test_summary_counts_packets_and_flows() -> None:
    r = flowprobe("replay", str(ROOT / "pcaps" / "malformed.pcap"))
    assert r.returncode == 0, r.stderr
    out = r.stderr  # the flows go to stdout, the summary follows on stderr
    read, decoded = field(out, "packets read"), field(out, "packets decoded")
    ignored = sum(int(ln.split()[-1]) for ln in out.splitlines() if "ignored:" in ln)
    assert read == decoded + ignored and ignored > 0
    created = field(out, "flows created")
    expired = sum(int(ln.split()[-1]) for ln in out.splitlines() if "expired:" in ln)
    assert created == expired > 0


def test_same_summary_for_any_batch_size() -> None:
    outs = {flowprobe("replay", str(DEMO), "--batch-size", n).stderr for n in ("1", "65536")}
    assert len(outs) == 1


def test_config_selection_applies_to_the_pcap() -> None:
    r = flowprobe("replay", str(DEMO), "-c", str(ROOT / "configs" / "sampling-count.json"),
                  "--export", "udp://127.0.0.1:9")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("selector"))
    read = field(r.stdout, "packets read")
    assert f"observed {read}, dropped {read - (read + 99) // 100}" in line


def test_export_sends_ipfix_to_the_url() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        r = flowprobe("replay", str(DEMO), "--export", f"udp://127.0.0.1:{s.getsockname()[1]}")
        assert r.returncode == 0, r.stderr
        data, _ = s.recvfrom(65535)
    assert data[:2] == b"\x00\x0a"  # IPFIX version 10


def test_export_ends_with_what_was_sent_and_what_udp_cannot_tell() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        url = f"udp://127.0.0.1:{s.getsockname()[1]}"
        paced = flowprobe("replay", str(DEMO), "--export", url)
        unpaced = flowprobe("replay", str(DEMO), "--export", url, "--rate", "0")
        slow = flowprobe("replay", str(DEMO), "--export", url, "--rate", "2.5M")
    assert paced.stdout.splitlines()[-1] == (
        f"export {url}: 38 records in 6 messages (2636 bytes), paced at 5 MB/s; UDP cannot "
        "confirm delivery: compare with the collector's count")
    assert unpaced.stdout.splitlines()[-1] == (
        f"export {url}: 38 records in 6 messages (2636 bytes); UDP cannot confirm delivery: "
        "compare with the collector's count")
    assert ", paced at 2.5 MB/s;" in slow.stdout.splitlines()[-1]


def test_export_over_tcp_ends_with_what_was_sent() -> None:
    from tests.export.peers import TcpCollector

    coll = TcpCollector().start()
    try:
        r = flowprobe("replay", str(DEMO), "--export", f"tcp://127.0.0.1:{coll.port}")
    finally:
        coll.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == (
        f"export tcp://127.0.0.1:{coll.port}: 38 records in 7 messages (2664 bytes); the "
        "collector read it all and closed the connection")


@pytest.mark.parametrize(("args", "needle"), [
    (("missing.pcap",), "missing.pcap"),
    ((str(DEMO), "--rate", "5M"), "--rate: only with --export"),
    ((str(DEMO), "--export", "udp://127.0.0.1:9", "--rate", "fast"), "--rate"),
    ((str(DEMO), "--export", "http://127.0.0.1:9"), "--export"),
    ((str(DEMO), "--export", "udp://127.0.0.1:99999"), "port"),
    ((str(DEMO), "--export", "udp://127.0.0.1"), "PORT"),
    ((str(DEMO), "--version", "7"), "--version"),
    ((str(DEMO), "--batch-size", "0"), "--batch-size"),
    ((str(DEMO), "--export", "tcp://127.0.0.1:9", "--version", "9"),
     "NetFlow v9 cannot go over TCP: RFC 3954 defines it for UDP only"),
    ((str(ROOT / "README.md"),), "README.md"),
])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    r = flowprobe("replay", *args)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_garbage_collection_is_back_on_after_a_replay_in_process(tmp_path: Path) -> None:
    """replay defers collection during start-up; it must be on again afterwards, also when the
    replay failed (an embedding program keeps running)."""
    import gc

    from probe.cli import main

    assert main(["replay", str(tmp_path / "missing.pcap"), "--export",
                 "udp://127.0.0.1:9"]) == 2
    assert gc.isenabled()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert main(["replay", str(DEMO), "-q", "--export", f"udp://127.0.0.1:{port}"]) == 0
    assert gc.isenabled()
