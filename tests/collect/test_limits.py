"""One exporter cannot starve another, and the collector's memory stays under its bound.

In process: a hostile exporter (one address, many source ports) tries to exhaust every budget
(templates, held data sets, domains, selectors, sessions); afterwards clean IPFIX, v9 and v5
streams from another exporter decode record for record, as a fresh collector decodes them.

As a user runs it (slow): ``flowprobe collect`` with its default ``--max-memory`` (256 MiB)
takes 200,000 fuzzed datagrams and the sampler flood of issue #13 (128 UDP source ports x 256
observation domains x options records for selectorIds 120..136) from 127.0.0.2; its peak RSS
(VmHWM) stays under 256 MiB, and a clean stream from 127.0.0.3 afterwards decodes whole.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.collect import Decoder
from probe.collect.limits import COST, memory_limits
from tests.collect.test_fuzz import _mutate, _seeds
from tests.collect.wire import (
    ipfix_message,
    ipfix_set,
    ipfix_template,
    v5_packet,
    v9_packet,
    v9_template,
)

HOSTILE, CLEAN = "127.0.0.2", "127.0.0.3"
V4 = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 8), (1, 8), (152, 8), (153, 8)]
REC = struct.Struct(">IIBHHQQQQ")


def clean_stream() -> list[bytes]:
    """IPFIX, v9 and v5 messages of one exporter: 1,500 + 600 + 300 flow records."""
    out = []
    recs = [REC.pack(0x0A000000 + i, 0x0A010000 + i, 6, i, 80, i + 1, 100 * i,
                     1_700_000_000_000 + i, 1_700_000_000_500 + i) for i in range(1500)]
    tmpl = ipfix_set(2, ipfix_template(256, V4))
    for m in range(50):
        out.append(ipfix_message([tmpl, ipfix_set(256, b"".join(recs[30 * m:30 * m + 30]))],
                                 seq=30 * m, domain=3))
    v9f = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 4), (1, 4), (22, 4), (21, 4)]
    t9 = v9_template(300, v9f)
    for m in range(20):
        body = b"".join(struct.pack(">IIBHHIIII", i, i + 1, 17, 53, i, 1, 64, 10, 20)
                        for i in range(30 * m, 30 * m + 30))
        out.append(v9_packet([struct.pack(">HH", 0, 4 + len(t9)) + t9,
                              struct.pack(">HH", 300, 4 + len(body)) + body], seq=m))
    r5 = [{"src": i, "dst": i + 1, "packets": 2, "bytes": 99, "first": 5, "last": 6,
           "sport": i, "dport": 443, "proto": 6} for i in range(30)]
    out += [v5_packet(r5, seq=30 * m) for m in range(10)]
    return out


def _lines(d: Decoder, msgs: list[bytes], exporter: str) -> list[dict]:
    for m in msgs:
        d.feed(m, exporter, ("udp", exporter, 4739, 2055))
    out = []
    for b in d.flush():
        for line in b.json_lines().splitlines():
            f = json.loads(line)
            f.pop("time_received_ns")
            out.append(f)
    return out


def attack(d: Decoder, rng: random.Random) -> None:
    """Everything one exporter address can try, from 200 source ports."""
    for port in range(200):
        key = ("udp", HOSTILE, 10_000 + port, 2055)
        big = b"".join(ipfix_template(256 + i, [(rng.randrange(1, 400), 4)] * 256)
                       for i in range(60))
        d.feed(ipfix_message([ipfix_set(2, big[:65000])], domain=port), HOSTILE, key)
        for dom in range(0, 256, 8):  # domains, held data sets for templates never sent
            d.feed(ipfix_message([ipfix_set(999, b"\1" * 4000)], domain=dom), HOSTILE, key)
    for msg in sampler_flood(ports=16, domains=64):
        d.feed(msg[1], HOSTILE, ("udp", HOSTILE, msg[0], 2055))
    d.flush()


def sampler_flood(ports: int = 128, domains: int = 256) -> list[tuple[int, bytes]]:
    """Issue #13's flood: per port and domain, an options template (scope selectorId) and
    records giving selectorIds 120..136 a sampling interval."""
    opts = ipfix_set(3, ipfix_template(400, [(302, 8), (305, 4), (306, 4)], scope=1))
    recs = ipfix_set(400, b"".join(struct.pack(">QII", sid, 1, sid) for sid in range(120, 137)))
    return [(20_000 + p, ipfix_message([opts, recs], domain=d)) for p in range(ports)
            for d in range(domains)]


def test_a_hostile_exporter_cannot_starve_a_clean_one() -> None:
    want = _lines(Decoder(), clean_stream(), CLEAN)
    assert len(want) == 2400
    d = Decoder(memory_limits())
    attack(d, random.Random(13))
    st = d.stats
    assert st.malformed["template_limit"] > 0 and st.malformed["held_dropped_limit"] > 0
    hostile = d.table.exporter_cost[HOSTILE]
    # Its share and no more, but for what is kept whatever the budgets say: each session and
    # the one domain a message needs.
    forced = d.limits.max_sessions_per_exporter * (COST["session"] + COST["domain"])
    assert d.limits.exporter_bytes / 2 < hostile <= d.limits.exporter_bytes + forced
    assert d.table.total_cost <= d.limits.state_bytes + forced
    assert _lines(d, clean_stream(), CLEAN) == want  # record for record, field for field


def test_when_the_whole_is_full_the_biggest_address_pays() -> None:
    """Many hostile addresses together fill the state budget: a newcomer still gets its
    templates, from the least recently used session of the address holding the most."""
    d = Decoder(memory_limits(96 << 20))  # a small budget, quickly full
    rng = random.Random(14)
    for a in range(40):
        exp = f"198.51.100.{a}"
        for port in range(8):
            big = b"".join(ipfix_template(256 + i, [(rng.randrange(1, 400), 4)] * 200)
                           for i in range(70))
            d.feed(ipfix_message([ipfix_set(2, big[:65000])]), exp, ("udp", exp, port, 1))
    assert d.table.total_cost > 0.9 * d.limits.state_bytes
    want = _lines(Decoder(), clean_stream(), CLEAN)
    assert _lines(d, clean_stream(), CLEAN) == want
    assert d.stats.sessions_evicted > 0


def _queued(port: int) -> int:
    """Bytes waiting in the collector's socket (/proc/net/udp), to pace the sender by: the
    point is what the collector keeps, so the kernel must not drop what it is sent."""
    hexport = f":{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[1].endswith(hexport):
            return int(cols[4].split(":")[1], 16)
    return 0


def _pace(port: int, deadline: float) -> None:
    while _queued(port) > 2 << 20:
        assert time.monotonic() < deadline, "bounded in time"
        time.sleep(0.005)


def _rss_peak(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.mark.slow
def test_rss_stays_under_the_bound_through_fuzz_and_the_sampler_flood(tmp_path: Path) -> None:
    out = tmp_path / "flows.json"
    proc = subprocess.Popen([sys.executable, "-m", "probe", "collect", "--listen",
                             "udp://127.0.0.1:0", "--output", str(out), "--buffer-size", "8M"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        assert line.startswith("listening on"), line
        port = int(line.rsplit(":", 1)[1])
        rng = random.Random(20261213)
        seeds = _seeds()
        socks = []
        for _ in range(128):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOSTILE, 0))
            socks.append(s)
        deadline = time.monotonic() + 240
        sent = 0
        for i, (p, msg) in enumerate(sampler_flood()):
            socks[p % 128].sendto(msg, ("127.0.0.1", port))
            if i % 100 == 99:
                _pace(port, deadline)
        for i in range(200_000):
            msg = _mutate(rng, rng.choice(seeds), seeds)
            socks[i % 128].sendto(msg[:65000], ("127.0.0.1", port))
            sent += 1
            if i % 100 == 99:
                _pace(port, deadline)
        time.sleep(1.0)
        clean = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        clean.bind((CLEAN, 0))
        before = out.stat().st_size if out.exists() else 0
        for m in clean_stream():
            clean.sendto(m, ("127.0.0.1", port))
            time.sleep(0.0005)
        time.sleep(1.5)
        peak = _rss_peak(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    print(f"\npeak RSS {peak / 2**20:.1f} MiB after {sent} fuzzed datagrams and the flood\n"
          f"{err}")
    assert proc.returncode == 0, err
    assert 0 < peak < 256 * 2**20
    with out.open("rb") as f:
        f.seek(before)
        got = [json.loads(x) for x in f if b'"sampler_address":"127.0.0.3"' in x]
    assert len(got) == 2400, err
    assert "datagrams dropped by the kernel" not in err  # it was sent, and it saw, everything
