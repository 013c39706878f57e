"""``flowprobe replay PCAP`` without ``--export``: the flows as the in-process collector decodes
them, ``--verify`` (and that it fails when it should), no loss over loopback, ``make demo``."""

from __future__ import annotations

import json
import os
import pty
import socket
import struct
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt
import pytest

from probe.cache.records import RecordBatch
from probe.cli import main
from probe.collect import Collector, Record
from probe.config.defaults import default_config
from probe.export.transport import UdpTransport
from probe.loopback import loop
from probe.pipeline import Pipeline
from tests.helpers import CORPUS

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo.pcap"
FLOWPROBE = ROOT / ".venv" / "bin" / "flowprobe"

Tuple5 = tuple[str, str, int, int, int]


def _replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["replay", *args])
    out, err = capsys.readouterr()
    return status, out, err


def _json_flows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def _per_tuple(flows: list[dict]) -> dict[Tuple5, tuple[int, int]]:
    acc: Counter[tuple[Tuple5, str]] = Counter()
    for f in flows:
        k = (f["src_addr"], f["dst_addr"], f["proto"], f.get("src_port", 0), f.get("dst_port", 0))
        acc[(k, "p")] += f["packets"]
        acc[(k, "b")] += f["bytes"]
    return {k: (acc[(k, "p")], acc[(k, "b")]) for k, what in acc if what == "p"}


def _dpkt_per_tuple(path: Path) -> dict[Tuple5, tuple[int, int]]:
    """An independent count: dpkt's parse, IP total length per packet, summed per 5-tuple."""
    acc: dict[Tuple5, list[int]] = {}
    with path.open("rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP):
                src, dst, proto, length = (socket.inet_ntop(socket.AF_INET, ip.src),
                                           socket.inet_ntop(socket.AF_INET, ip.dst), ip.p, ip.len)
            else:
                assert isinstance(ip, dpkt.ip6.IP6)
                src, dst, proto, length = (socket.inet_ntop(socket.AF_INET6, ip.src),
                                           socket.inet_ntop(socket.AF_INET6, ip.dst), ip.nxt,
                                           40 + ip.plen)
            l4 = ip.data
            ports = (l4.sport, l4.dport) if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP) else (0, 0)
            tot = acc.setdefault((src, dst, proto, *ports), [0, 0])
            tot[0] += 1
            tot[1] += length
    return {k: (p, b) for k, (p, b) in acc.items()}


class _Keep:
    def __init__(self) -> None:
        self.packets = self.octets = self.records = 0

    def export(self, records: RecordBatch, now_us: int) -> None:
        self.packets += int(records.columns["_packets"].sum())
        self.octets += int(records.columns["_octets"].sum())
        self.records += len(records)

    def tick(self, now_us: int) -> None:
        pass

    def close(self, now_us: int) -> None:
        pass


def _pipeline_totals(path: Path) -> _Keep:
    keep = _Keep()
    p = Pipeline(default_config(str(path)), exporters=False)
    p.attach(keep)
    p.run(handle_signals=False)
    return keep


# ------------------------------------------------------------------ what is shown
def test_json_lines_carry_every_packet_and_byte(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _replay(capsys, str(DEMO), "--format", "json")
    assert status == 0, err
    flows = _json_flows(out)
    cache = _pipeline_totals(DEMO)
    assert len(flows) == cache.records == 38
    assert sum(f["packets"] for f in flows) == cache.packets == 260
    assert sum(f["bytes"] for f in flows) == cache.octets
    assert _per_tuple(flows) == _dpkt_per_tuple(DEMO)
    assert {f["type"] for f in flows} == {"IPFIX"}
    assert {f["etype"] for f in flows} == {0x800, 0x86DD}
    # the summary follows on stderr, with what went over loopback
    assert "packets read        260" in err
    assert "loopback IPFIX: 38 records sent" in err and "38 decoded" in err


def test_json_is_the_default_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _replay(capsys, str(DEMO), "-q")
    assert status == 0
    assert len(_json_flows(out)) == 38


def test_table_lists_flows_by_start_with_totals(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _replay(capsys, str(DEMO), "--format", "table", "-q")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["first", "seen", "duration", "proto", "src", "dst", "flags",
                                "packets", "bytes"]
    rows = [r.split() for r in lines[1:-1]]
    assert len(rows) == 38
    assert lines[-1] == f"total: 38 flows, 260 packets, {_pipeline_totals(DEMO).octets} bytes"
    assert [r[:2] for r in rows] == sorted(r[:2] for r in rows)
    # first seen (date, time), duration, proto, src, ->, dst, [flags], packets, bytes
    assert ["0.606", "TCP", "192.0.2.10:40000", "->", "198.51.100.20:80", "FS.PA...", "13",
            "567"] in [r[2:] for r in rows]
    assert ["4.000", "ICMP", "192.0.2.10:0", "->", "198.51.100.20:8.0", "5", "420"] in \
        [r[2:] for r in rows]
    assert any(r[4:7] == ["[2001:db8::10]:50000", "->", "[2001:db8:1::80]:443"] for r in rows)
    assert err == ""  # -q: no summary


def test_table_is_the_default_on_a_terminal() -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([str(FLOWPROBE), "replay", str(DEMO), "-q"], stdout=follower,
                              stderr=subprocess.PIPE, timeout=60, cwd=ROOT, check=False)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
    assert proc.returncode == 0, proc.stderr
    text = b"".join(chunks).decode()
    assert text.splitlines()[0].startswith("first seen")
    assert "total: 38 flows, 260 packets" in text


def test_make_demo_prints_a_flow_table_even_piped() -> None:
    """``make demo`` itself, piped as a user would (into less or grep), shows the table."""
    # -o: never re-install the venv from inside a test (the other xdist worker runs from it)
    r = subprocess.run(["make", "-s", "-o", ".venv/.installed", "demo"], capture_output=True,
                       text=True, timeout=120, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith(".venv/")]
    assert lines[0].startswith("first seen")
    assert lines[-1] == "total: 38 flows, 260 packets, 140762 bytes"
    assert any("192.0.2.10:40001" in ln and "198.51.100.20:443" in ln for ln in lines)
    assert "flows created       38" in r.stderr


# ------------------------------------------------------------------ --verify
@pytest.mark.parametrize(("version", "compared", "left_out"), [(10, 38, 0), (9, 38, 0),
                                                                 (5, 26, 12)])
def test_verify_passes_for_each_version(capsys: pytest.CaptureFixture[str], version: int,
                                        compared: int, left_out: int) -> None:
    status, out, err = _replay(capsys, str(DEMO), "--verify", "--version", str(version), "-q")
    assert status == 0, err
    assert len(_json_flows(out)) == compared
    (line,) = [ln for ln in err.splitlines() if ln.startswith("verify:")]
    assert line.startswith(f"verify: OK: the {compared} records decoded")
    assert f"equal the {compared} the cache expired" in line
    assert (f"{left_out} IPv6 records not compared" in line) == bool(left_out)


def test_verify_with_a_config_uses_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _replay(capsys, str(DEMO), "-c", str(ROOT / "configs" / "netflow-v5.json"),
                               "--verify", "-q")
    assert status == 0, err
    assert {f["type"] for f in _json_flows(out)} == {"NETFLOW_V5"}
    assert "verify: OK" in err


def _tamper(monkeypatch: pytest.MonkeyPatch, change: Callable[[dict], None]) -> None:
    """Corrupt one decoded record (the 19-packet flow to port 443) on its way to replay."""
    real = Collector.decoded

    def tampered(self: Collector, timeout: float | None = None) -> Iterator[Record]:
        for rec in real(self, timeout):
            raw = rec.raw
            if raw.get("destinationTransportPort") == 443 and raw.get("packetDeltaCount") == 19:
                change(raw)
            yield rec

    monkeypatch.setattr(Collector, "decoded", tampered)


def test_verify_fails_on_a_changed_field(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _tamper(monkeypatch, lambda raw: raw.update(packetDeltaCount=18))
    status, _, err = _replay(capsys, str(DEMO), "--verify", "-q")
    assert status == 1
    assert "verify: FAILED: 1 records differ" in err
    assert "packetDeltaCount: cache 19, collector 18" in err
    assert "destinationTransportPort=443" in err


@pytest.mark.parametrize("version", ["10", "9"])
def test_verify_fails_on_a_field_the_record_lacks(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  version: str) -> None:
    _tamper(monkeypatch, lambda raw: raw.pop("flowEndReason"))
    status, _, err = _replay(capsys, str(DEMO), "--verify", "-q", "--version", version)
    assert status == 1
    assert "flowEndReason: cache 4, collector <not in the decoded record>" in err


def _has_flow_records(msg: bytes) -> bool:
    """An IPFIX message with a data set in the flows' domain 1 (options go in domain 0)."""
    if struct.unpack_from("!I", msg, 12)[0] != 1:
        return False
    pos = 16
    while pos + 4 <= len(msg):
        set_id, length = struct.unpack_from("!HH", msg, pos)
        if set_id >= 256:
            return True
        pos += max(length, 4)
    return False


def test_verify_and_the_loss_check_fail_on_a_lost_message(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = UdpTransport.send
    dropped: list[bytes] = []

    def lossy(self: UdpTransport, msg: bytes) -> bool:
        if not dropped and _has_flow_records(msg):
            dropped.append(msg)
            return True  # "sent", never arrives
        return real(self, msg)

    monkeypatch.setattr(UdpTransport, "send", lossy)
    monkeypatch.setattr(loop, "_STALL_S", 0.3)
    status, out, err = _replay(capsys, str(DEMO), "--verify", "-q")
    assert status == 1 and dropped
    n = len(_json_flows(out))
    assert n < 38
    assert f"the collector decoded {n} of the 38 records" in err
    assert f"verify: FAILED: {38 - n} records differ" in err
    assert "missing from the collector:" in err


# ------------------------------------------------------------------ no loss over loopback
@pytest.fixture(scope="module")
def many_flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools import tracegen

    path = tmp_path_factory.mktemp("replay") / "many.pcap"
    tracegen.generate(path, 20000, seed=3, flow_packets=1.0)
    return path


def test_no_loss_with_an_unprivileged_socket_buffer(
        many_flows: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """208 KB is what a process without CAP_NET_ADMIN gets by default: pacing keeps every one
    of ~14k records (~550 messages sent as fast as the meter makes them)."""
    monkeypatch.setattr("probe.collect.server.DEFAULT_RCVBUF", 106496)  # the kernel doubles it
    status, out, err = _replay(capsys, str(many_flows), "--verify")
    assert status == 0, err[-2000:]
    cache = _pipeline_totals(many_flows)
    assert len(_json_flows(out)) == cache.records > 10000
    assert f"{cache.records} records sent" in err and f"{cache.records} decoded" in err
    assert "verify: OK" in err


def test_loss_is_reported_not_hidden(many_flows: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pacing, with a tiny buffer and a collector that falls behind, datagrams are
    lost: replay must say so, exit 1.

    The collector reads nothing until the exporting process has sent its last message, so the
    loss does not hang on whether its thread happens to keep up on this host (on CI it once did:
    the meter's expiries came spread over enough batches for a fast reader to drain them).
    """
    from probe.collect.server import CollectorLoop
    from probe.export.process import ExportingProcessRuntime

    monkeypatch.setattr("probe.collect.server.DEFAULT_RCVBUF", 4096)
    monkeypatch.setattr(loop, "_WINDOW_MESSAGES", 10**9)
    monkeypatch.setattr(loop, "_SLICE_RECORDS", 10**9)
    monkeypatch.setattr(loop, "_STALL_S", 0.3)
    all_sent = threading.Event()
    read_udp, close = CollectorLoop._read_udp, ExportingProcessRuntime.close

    def late_read(self: CollectorLoop, *args: object, **kw: object) -> None:
        all_sent.wait(timeout=60)
        read_udp(self, *args, **kw)

    def close_then_open_gate(self: ExportingProcessRuntime, now_us: int) -> None:
        close(self, now_us)
        all_sent.set()

    monkeypatch.setattr(CollectorLoop, "_read_udp", late_read)
    monkeypatch.setattr(ExportingProcessRuntime, "close", close_then_open_gate)
    status, out, err = _replay(capsys, str(many_flows), "-q")
    assert status == 1
    (line,) = [ln for ln in err.splitlines() if ln.startswith("flowprobe replay: the collector")]
    decoded = int(line.split()[5])
    assert decoded == len(_json_flows(out)) < _pipeline_totals(many_flows).records


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(("args", "needle"), [
    (("--export", "udp://127.0.0.1:9", "--verify"), "--verify"),
    (("--export", "udp://127.0.0.1:9", "--format", "json"), "--format"),
    (("-c", str(ROOT / "configs" / "ipv4-ipv6.json"), "--version", "5"), "NetFlow v5"),
])
def test_bad_combinations_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                                  args: tuple[str, ...], needle: str) -> None:
    status, _, err = _replay(capsys, str(DEMO), *args)
    assert status == 2
    assert needle in err and "Traceback" not in err


# ------------------------------------------------------------------ protocol limits, stated


@pytest.mark.skipif(not CORPUS.is_dir(), reason="tcpdump test captures not present")
def test_v5_verify_compares_the_tcp_flags_v5_can_carry(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """AccECN sets the AE bit (0x100): IPFIX carries it, v5's one-octet flags cannot."""
    pcap = str(CORPUS / "accecn_handshake.pcap")
    status, out, err = _replay(capsys, pcap, "--verify", "-q")
    assert status == 0, err
    assert any(f["tcp_flags"] > 0xFF for f in _json_flows(out))
    status, out, err = _replay(capsys, pcap, "--verify", "-q", "--version", "5")
    assert status == 0, err
    assert all(f["tcp_flags"] <= 0xFF for f in _json_flows(out))


@pytest.mark.skipif(not CORPUS.is_dir(), reason="tcpdump test captures not present")
def test_v5_flows_past_the_sysuptime_wrap_are_not_exported(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Packet times decades apart: v5's 32-bit millisecond uptime cannot place the flows that
    began 49.7 days or more before their export, so the exporter counts them as not
    exportable instead of sending wrong times, and verify says what it left out."""
    pcap = str(CORPUS / "smb_data_print-segv.pcap")
    assert _replay(capsys, pcap, "--verify", "-q")[0] == 0  # IPFIX: absolute times
    status, out, err = _replay(capsys, pcap, "--verify", "-q", "--version", "5")
    assert status == 0, err
    assert len(out.splitlines()) == 1  # the one flow v5 can place
    assert ("verify: OK: the 1 records decoded from NetFlow v5 equal the 1 the cache expired, "
            "every field; 2 records not compared: they began 49.7 days or more before their "
            "export, which NetFlow v5's sysUptime cannot say") in err
    assert "NetFlow v5 cannot carry flows that started 49.7 days or more" in caplog.text
