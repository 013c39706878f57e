"""``flowprobe collect --transport nats`` into a real ``nats-server -js`` on 127.0.0.1, read
back by a JetStream consumer: every record arrives, on the subject its fields make; a server
stopped for 5 s mid-stream loses nothing; one that stays away longer than the retry bound
loses what it must, counted and printed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from probe.format import flow_pb2
from tests.export.peers import drain, free_port, have, udp_sink
from tests.format import protoc, sources
from tests.interop.natsserver import NatsServer, nats_server, read_stream
from tools import bench, tracegen

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("nats-server"), reason="nats-server is needed")]


class Collect:
    """``flowprobe collect --listen netflow+sflow --transport nats ...`` as a subprocess."""

    def __init__(self, server: NatsServer, *args: str,
                 listen: str = "flow://127.0.0.1:0") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "collect", "--listen", listen,
             "--transport", "nats", "--nats-servers", server.url, *args],
            stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        assert line.startswith("listening on flow://127.0.0.1:"), line + self.proc.stderr.read()
        self.port = int(line.split("?")[0].rsplit(":", 1)[1])
        # one exporter: one source port, so all messages are one transport session
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, datagrams: list[bytes] | tuple[bytes, ...], pause_every: int = 50) -> None:
        for i, d in enumerate(datagrams):
            self.sock.sendto(d, ("127.0.0.1", self.port))
            if i % pause_every == pause_every - 1:
                time.sleep(0.002)

    def stop(self) -> tuple[int, str]:
        time.sleep(0.3)
        self.sock.close()
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err


def _without_time(line: dict) -> dict:
    """A flow without the times the collector's clock gives (sFlow's flow times are it)."""
    clock = ("time_received_ns", "time_flow_start_ns", "time_flow_end_ns") \
        if line["type"] == "SFLOW_5" else ("time_received_ns",)
    return {k: v for k, v in line.items() if k not in clock}


def test_every_record_on_its_subject(tmp_path: Path) -> None:
    records = sources.flows(sources.decoded())
    with nats_server(tmp_path) as server:
        c = Collect(server, "--nats-stream", "flows", "--nats-subject",
                    "flows.{sampler_address}.{type}")
        c.send(sources.all_datagrams())
        rc, err = c.stop()
        assert rc == 0, err
        n = len(records)
        assert f"nats: {n} published to stream flows, {n} acknowledged, 0 retries, 0 lost" \
            in err
        messages = read_stream(server.url, "flows")
        sflow_only = read_stream(server.url, "flows", "flows.*.SFLOW_5")
    assert len(messages) == n
    subjects = Counter(s for s, _ in messages)
    assert subjects == Counter(
        f"flows.{r['sampler_address'].replace('.', '_')}.{r['type']}" for r in records)
    got = sorted(json.dumps(_without_time(json.loads(p)), sort_keys=True) for _, p in messages)
    want = sorted(json.dumps(_without_time(r), sort_keys=True) for r in records)
    assert got == want
    assert len(sflow_only) == sum(r["type"] == "SFLOW_5" for r in records) == 3
    assert {s for s, _ in sflow_only} == {"flows.192_0_2_1.SFLOW_5", "flows.2001:db8::ff.SFLOW_5"}


def test_workers_publish_through_the_parent(tmp_path: Path) -> None:
    """With ?count=2 the workers frame their messages and the parent's one client sends."""
    n = len(sources.flows(sources.decoded()))
    with nats_server(tmp_path) as server:
        c = Collect(server, "--nats-subject", "flows.{type}",
                    listen="flow://127.0.0.1:0?count=2")
        c.send(sources.all_datagrams())
        rc, err = c.stop()
        assert rc == 0, err
        messages = read_stream(server.url, "flows")
    assert f"nats: {n} published to stream flows, {n} acknowledged" in err
    assert len(messages) == n
    assert {s for s, _ in messages} == {"flows.IPFIX", "flows.NETFLOW_V9", "flows.NETFLOW_V5",
                                        "flows.SFLOW_5"}


def test_protobuf_payloads(tmp_path: Path) -> None:
    with nats_server(tmp_path) as server:
        c = Collect(server, "--format", "bin", "--nats-stream", "pb")
        c.send(sources.all_datagrams())
        rc, err = c.stop()
        assert rc == 0, err
        messages = read_stream(server.url, "pb")
    flows = [f for f in sources.flows(sources.decoded()) if f.get("sample_type") != "counters"]
    assert len(messages) == len(flows)
    decoded = []
    for _, payload in messages:  # each message is one delimited FlowMessage, as goflow2's
        (body,) = protoc.split(payload)
        decoded.append(flow_pb2.FlowMessage.FromString(body))
    assert Counter((m.type, m.src_port, m.dst_port, m.packets, m.bytes) for m in decoded) == \
        Counter((flow_pb2.FlowMessage.FlowType.Value(f["type"]), f.get("src_port", 0),
                 f.get("dst_port", 0), f["packets"], f["bytes"]) for f in flows)


def test_no_server_is_one_line_and_exit_1() -> None:
    r = subprocess.run([sys.executable, "-m", "probe", "collect", "--listen",
                        "udp://127.0.0.1:0", "--transport", "nats", "--nats-servers",
                        "nats://127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == \
        (1, "nats: nats://127.0.0.1:1: no server answered within 5 s\n")


def _trace_datagrams(tmp_path: Path, packets: int) -> tuple[list[bytes], dict]:
    """The IPFIX messages ``flowprobe replay`` exports for a generated trace, and the
    generator's per-5-tuple truth."""
    pcap = tmp_path / "trace.pcap"
    summary = tracegen.generate(pcap, packets, seed=7, totals=True)
    with udp_sink() as sink:
        subprocess.run([sys.executable, "-m", "probe", "replay", str(pcap), "--export",
                        f"udp://127.0.0.1:{sink.getsockname()[1]}", "-q"], check=True,
                       capture_output=True, timeout=300)
        datagrams = drain(sink)
    return datagrams, bench.expected(summary["totals"], "ip_octets")


def totals(messages: list[tuple[str, bytes]]) -> dict:
    """Per-5-tuple (packets, octets) of JSON flow messages, keyed as the generator's truth."""
    out: Counter = Counter()
    octets: Counter = Counter()
    for _, payload in messages:
        f = json.loads(payload)
        dport = f.get("dst_port", 0)
        if f["proto"] in (1, 58):
            dport = f["icmp_type"] << 8 | f["icmp_code"]
        key = (f["proto"], f["src_addr"], f["dst_addr"], f.get("src_port", 0), dport)
        out[key] += f["packets"]
        octets[key] += f["bytes"]
    return {k: (out[k], octets[k]) for k in out}


# The README's measurement: FLOWPROBE_NATS_PACKETS=1000000 pytest -k stopped_for_5_s
PACKETS = int(os.environ.get("FLOWPROBE_NATS_PACKETS", "60000"))


@pytest.mark.slow
def test_server_stopped_for_5_s_mid_stream_loses_nothing(tmp_path: Path) -> None:
    datagrams, truth = _trace_datagrams(tmp_path, PACKETS)
    third = len(datagrams) // 3
    with nats_server(tmp_path) as server:
        started = time.monotonic()
        c = Collect(server)
        c.send(datagrams[:third])
        time.sleep(0.5)
        server.stop()
        down = time.monotonic()
        c.send(datagrams[third:2 * third])  # flows decoded while no server answers
        time.sleep(max(0.0, 5.0 - (time.monotonic() - down)))
        server.start()
        c.send(datagrams[2 * third:])
        rc, err = c.stop()
        took = time.monotonic() - started
        assert rc == 0, err
        messages = read_stream(server.url, "flows")
    records = int(err.split("records: ")[1].split()[0])
    print(f"{PACKETS} packets, {len(datagrams)} IPFIX messages, {records} records through "
          f"NATS in {took:.1f} s (5 s of them without a server)\n{err}")
    assert f"{records} acknowledged" in err and ", 0 lost" in err
    retries = int(err.split(" acknowledged, ")[1].split()[0])
    assert retries > 0  # the outage was felt, and ridden out
    assert len(messages) == records
    assert totals(messages) == truth


@pytest.mark.slow
def test_a_server_that_stays_away_is_counted_loss(tmp_path: Path) -> None:
    datagrams, _ = _trace_datagrams(tmp_path, 20_000)
    half = len(datagrams) // 2
    metrics = free_port(socket.SOCK_STREAM)
    with nats_server(tmp_path) as server:
        c = Collect(server, "--nats-retry-for", "1.5", "--metrics-port", str(metrics))
        c.send(datagrams[:half])
        time.sleep(0.5)
        server.stop()
        c.send(datagrams[half:])
        time.sleep(3)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as r:
            scraped = r.read().decode()
        server.start()
        rc, err = c.stop()
        stored = len(read_stream(server.url, "flows"))
    records = int(err.split("records: ")[1].split()[0])
    lost = int(err.split(" retries, ")[1].split()[0])
    assert rc == 1, err
    assert lost > 0 and f"{lost} not acknowledged within 1.5 s" in err
    # what the metrics said while the server was away: the loss so far, by transport
    (line,) = [x for x in scraped.splitlines()
               if x.startswith('flowprobe_collect_publish_errors_total{transport="nats"}')]
    assert 0 < float(line.split()[-1]) <= lost
    # Nothing vanished unsaid: what is not in the stream was counted. The count is an upper
    # bound: a message in flight when the server went away may be stored unacknowledged.
    assert stored < records <= stored + lost
    assert stored + lost - records <= 1024  # at most what was in flight
