"""``flowprobe collect`` as a user runs it: a subprocess, real sockets, signals, exit codes."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.collect.wire import (
    ipfix_message,
    ipfix_set,
    ipfix_template,
    ipv4,
    v5_packet,
)

PY = [sys.executable, "-m", "probe", "collect"]
FLOW = {"src": ipv4("10.0.0.1"), "dst": ipv4("10.0.0.2"), "packets": 7, "bytes": 700,
        "first": 90_000, "last": 99_000, "sport": 1234, "dport": 80, "proto": 6, "flags": 0x1B}


def _start(*args: str) -> tuple[subprocess.Popen, list[tuple[str, int]]]:
    proc = subprocess.Popen([*PY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    bound = []
    n = sum(1 for a in args if a == "--listen") or 2
    for _ in range(n):
        line = proc.stderr.readline()
        assert line.startswith("listening on "), line
        url = line.split()[-1].partition("?")[0]
        bound.append((url.split(":", 1)[0], int(url.rsplit(":", 1)[1])))
    return proc, bound


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[str, str]:
    time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return out, err


def _udp_send(port: int, *msgs: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for m in msgs:
            s.sendto(m, ("127.0.0.1", port))


def _ipfix_pair() -> bytes:
    fields = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 8), (1, 8)]
    rec = struct.pack(">IIBHHQQ", ipv4("192.0.2.1"), ipv4("192.0.2.2"), 17, 53, 5353, 2, 150)
    return ipfix_message([ipfix_set(2, ipfix_template(256, fields)), ipfix_set(256, rec)])


def test_json_lines_with_goflow2_names_and_stats_on_sigterm() -> None:
    proc, [(_, port)] = _start("--listen", "udp://127.0.0.1:0")
    _udp_send(port, v5_packet([FLOW, FLOW], seq=0), b"\x00\x05garbage", v5_packet([FLOW], seq=5))
    out, err = _stop(proc)
    flows = [json.loads(line) for line in out.splitlines()]
    assert len(flows) == 3
    f = flows[0]
    assert (f["type"], f["src_addr"], f["dst_addr"], f["proto"], f["src_port"], f["dst_port"],
            f["packets"], f["bytes"], f["tcp_flags"], f["sampler_address"]) == \
        ("NETFLOW_V5", "10.0.0.1", "10.0.0.2", 6, 1234, 80, 7, 700, 0x1B, "127.0.0.1")
    assert "messages: 2 (NETFLOW_V5 2)" in err
    assert "lost records 3" in err  # flows 2, 3, 4 never arrived
    assert "short_header 1" in err


def test_text_table_with_totals_to_file_on_sigint(tmp_path: Path) -> None:
    out_file = tmp_path / "flows.txt"
    proc, [(_, port)] = _start("--listen", "udp://127.0.0.1:0", "--format", "text",
                               "--output", str(out_file))
    _udp_send(port, v5_packet([FLOW, FLOW, FLOW]))
    stdout, _ = _stop(proc, signal.SIGINT)
    assert stdout == ""
    text = out_file.read_text()
    assert "10.0.0.1:1234 -> 10.0.0.2:80" in text
    assert ".SR.A..." not in text and "FS.PA..." in text  # flags 0x1B: FIN SYN PSH ACK
    assert text.rstrip().endswith("total: 3 flows, 21 packets, 2100 bytes")


def test_tcp_ipfix_split_across_reads() -> None:
    proc, [(_, port)] = _start("--listen", "tcp://127.0.0.1:0")
    stream = _ipfix_pair() * 3
    with socket.create_connection(("127.0.0.1", port)) as s:
        for i in range(0, len(stream), 7):  # partial messages must be buffered
            s.sendall(stream[i:i + 7])
            time.sleep(0.001)
    out, err = _stop(proc)
    flows = [json.loads(line) for line in out.splitlines()]
    assert len(flows) == 3 and {f["dst_port"] for f in flows} == {5353}
    assert "malformed/refused: 0" in err


def test_config_collecting_process_endpoints(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "collector.json"
    cfg.write_text(json.dumps({"collectingProcess": [{
        "name": "C",
        "udpCollector": [{"name": "u", "localPort": port, "localIPAddress": ["127.0.0.1"]}],
        "tcpCollector": [{"name": "t", "localPort": port, "localIPAddress": ["127.0.0.1"]}],
    }]}))
    proc, bound = _start("-c", str(cfg))
    assert bound == [("udp", port), ("tcp", port)]
    _udp_send(port, v5_packet([FLOW]))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(_ipfix_pair())
    out, _ = _stop(proc)
    assert sorted(json.loads(line)["type"] for line in out.splitlines()) == \
        ["IPFIX", "NETFLOW_V5"]


def _fails(*args: str) -> str:
    r = subprocess.run([*PY, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    return r.stderr.strip()


def test_user_errors_exit_2_with_one_line() -> None:
    assert _fails("--listen", "http://127.0.0.1:1") == \
        "--listen http://127.0.0.1:1: scheme must be netflow://, sflow://, flow://, udp:// " \
        "or tcp://"
    assert _fails("--listen", "udp://127.0.0.1") == \
        "--listen udp://127.0.0.1: expected udp://HOST:PORT"
    assert "Port out of range" in _fails("--listen", "udp://127.0.0.1:70000")
    assert "give --listen" in _fails()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert _fails("--listen", f"udp://127.0.0.1:{port}") == \
            f"udp://127.0.0.1:{port}: cannot listen: port in use"
    assert _fails("-c", "/nonexistent/collector.json").count("\n") == 0


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int, want: dict[str, float], timeout: float = 10.0) -> dict[str, float]:
    """The metrics endpoint's samples, once they show ``want`` (gauges follow within a
    second: the collector sets them once a second)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        except OSError:
            text = b""
        samples = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        if all(samples.get(k) == v for k, v in want.items()) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_metrics_endpoint_counts_what_was_decoded_and_refused() -> None:
    """What a Prometheus scrape of ``collect --metrics-port`` shows: records and messages per
    exporter and type, refusals by kind, records lost by sequence number, templates known;
    with two workers the sum of both."""
    for listen in ("udp://127.0.0.1:0", "udp://127.0.0.1:0?count=2"):
        mport = _free_tcp_port()
        proc, [(_, port)] = _start("--listen", listen, "--metrics-port", str(mport))
        try:
            _udp_send(port, v5_packet([FLOW, FLOW], seq=0), b"\x00\x05garbage",
                      v5_packet([FLOW], seq=5), _ipfix_pair())
            key = 'flowprobe_collect_records_total{exporter="127.0.0.1",type="IPFIX"}'
            m = _scrape(mport, {key: 1, "flowprobe_collect_templates": 1})
        finally:
            _stop(proc)
        assert m[key] == 1, (listen, m)
        assert m['flowprobe_collect_records_total{exporter="127.0.0.1",type="NETFLOW_V5"}'] == 3
        assert m['flowprobe_collect_messages_total{exporter="127.0.0.1",type="NETFLOW_V5"}'] == 2
        assert m['flowprobe_collect_decode_errors_total{kind="short_header"}'] == 1
        # a v5 "domain" is engine type << 8 | engine id (1 and 2 in these packets)
        assert m['flowprobe_collect_sequence_lost_total{exporter="127.0.0.1",'
                 'observation_domain="258",unit="records"}'] == 3
        assert m["flowprobe_collect_templates"] == 1
def test_read_ipfix_files_then_exit(tmp_path: Path) -> None:
    """``--read FILE``: the messages of an IPFIX File, one session; nothing to listen on, so
    the command ends when the file is read. A file cut short gives what it holds, then one
    line saying where it stopped (exit 2); a file that is no IPFIX File is one line too."""
    one = tmp_path / "one.ipfix"
    one.write_bytes(_ipfix_pair() + _ipfix_pair()[:20])
    r = subprocess.run([*PY, "--read", str(one)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert [json.loads(line)["dst_port"] for line in r.stdout.splitlines()] == [5353]
    assert r.stderr.strip().splitlines()[-1] == (
        f"{one}: message 2 at octet {len(_ipfix_pair())} is cut short: 20 of its "
        f"{len(_ipfix_pair())} octets; the 1 messages before it were decoded")
    assert "file_cut_short 1" in r.stderr
    assert _fails("--read", str(tmp_path / "none.ipfix")) == \
        f"{tmp_path / 'none.ipfix'}: cannot read IPFIX file: No such file or directory"
    v5 = tmp_path / "v5.bin"
    v5.write_bytes(v5_packet([FLOW]))
    assert _fails("--read", str(v5)).splitlines()[-1] == \
        f"{v5}: not an IPFIX File: its first message has version 5"


def test_read_compressed_ipfix_files(tmp_path: Path) -> None:
    """RFC 5655 §8.2: a file compressed as a whole reads like the plain one."""
    import bz2
    import gzip

    plain = _ipfix_pair() * 2
    outs = []
    for name, data in (("plain.ipfix", plain), ("flows.ipfix.gz", gzip.compress(plain)),
                       ("flows.ipfix.bz2", bz2.compress(plain))):
        (tmp_path / name).write_bytes(data)
        r = subprocess.run([*PY, "--read", str(tmp_path / name)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert len(outs[0].splitlines()) == 2 and outs[0] == outs[1] == outs[2]
