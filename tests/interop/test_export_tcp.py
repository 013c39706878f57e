"""IPFIX over TCP: the collector goes away in the middle of an export and comes back. Records
wait in the exporter's queue; the new connection gets templates first, then the records the
first connection may have lost (sent again, and counted so), then the queue, and no record is
lost. Templates are withdrawn at the clean close; tshark finds nothing to warn about.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from ipaddress import ip_address
from pathlib import Path

import pytest

from probe.config.defaults import default_config
from probe.export import open_exporting_process
from tests.export.expect import batch_rows
from tests.export.flows import SYS_INIT_US, batch
from tests.export.peers import (
    TcpCollector,
    dumpcap,
    expert_problems,
    have,
    tshark_expert,
    wait_until,
)
from tests.export.wire import Decoder, split_stream

pytestmark = pytest.mark.interop


def _decoded_rows(stream: bytes) -> tuple[list[tuple], list[str]]:
    """Records of one connection (as ``batch_rows`` tuples minus flags) and ordering problems."""
    d = Decoder()
    rows = []
    problems = []
    announced: set[int] = set()
    for raw in split_stream(stream):
        m = d.decode(raw)
        announced.update(t[0] for t in m.templates)
        for tid, r in m.data:
            if tid not in announced:
                problems.append(f"data of template {tid} before its template")
            v4 = 8 in r
            src, dst = (r[8], r[12]) if v4 else (r[27], r[28])
            rows.append((str(ip_address(src)), str(ip_address(dst)), r[4], r[7], r[11], r[152],
                         r[153], r[2], r[1]))
    return rows, problems


def _expected(batches) -> list[tuple]:
    return sorted((r[0], r[1], r[2], r[3], r[4], r[6], r[7], r[8], r[9])
                  for b in batches for r in batch_rows(b))


def test_tcp_collector_restart_loses_nothing(tmp_path: Path) -> None:
    coll = TcpCollector().start()
    port = coll.port
    cfg = default_config(export=("tcp", "127.0.0.1", port), version=10)
    ep = cfg.exporting_processes[0]
    batches = [batch(n, 4 if i % 3 else 6, seed=50 + i, offset_us=i * 1000)
               for i, n in enumerate((500, 120, 333, 2000, 77, 900, 45, 1200))]
    cap = tmp_path / "tcp.pcap"
    use_tshark = have("dumpcap", "tshark")
    with contextlib.ExitStack() as stack:
        if use_tshark:
            stack.enter_context(dumpcap(cap, f"tcp port {port}"))
        rt = open_exporting_process(ep, cfg, SYS_INIT_US)
        name = ep.destinations[0].name
        now = SYS_INIT_US + 120_000_000
        first = coll
        for i, b in enumerate(batches):
            if i == 3:
                first.stop()  # the collector goes away mid-export...
                # ...and the exporter notices (its ticks see the peer's close)
                def down(t: int = now) -> bool:
                    rt.tick(t)
                    return rt.stats()[name]["connected"] == 0

                wait_until(down, "the exporter seeing the collector gone")
            if i == 6:
                coll = TcpCollector(port).start()  # ...and comes back on the same port
            rt.export(b, now)
            now += 1_500_000
            rt.tick(now)
            if i == 4:
                stats_down = rt.stats()[name]
        rt.close(now)
        coll.stop()
    assert stats_down["connected"] == 0, stats_down
    assert stats_down["queued"] > 0, stats_down
    streams = [bytes(s) for s in first.streams + coll.streams]
    assert len(streams) == 2
    rows = []
    for s in streams:
        r, problems = _decoded_rows(s)
        assert problems == []
        rows += r
    # The first collector read everything before it closed, yet the exporter cannot tell that
    # from a crash: what it sent last (here all of it) went again to the second one.
    expected = _expected(batches)
    st = rt.stats()[ep.destinations[0].name]
    assert sorted(set(rows)) == expected
    extra = Counter(rows) - Counter(expected)
    assert sum(extra.values()) == st["resent"] > 0
    final = Decoder()
    msgs = [final.decode(m) for m in split_stream(streams[-1])]
    withdrawn = {t for m in msgs for t in m.withdrawn}
    announced = {t[0] for m in msgs for t in m.templates if not t[2]}
    assert withdrawn == announced  # every data template withdrawn at the clean close
    assert st["records"] == sum(len(b) for b in batches)
    assert st["dropped"] == st["unconfirmed"] == 0 and st["connects"] == 2
    if use_tshark:
        expert = tshark_expert(cap, f"tcp.port=={port},cflow")
        # TCP-layer entries about the peer, not our stream: the first collector goes away on
        # purpose (its RST), and on a loaded machine this small test collector reads slowly
        # (window full / zero window). The IPFIX content is judged record by record above;
        # any cflow warning or error still fails.
        allowed = frozenset({
            ("TCP", "Connection reset (RST)"),
            ("TCP", "TCP window specified by the receiver is now completely full"),
            ("TCP", "TCP Zero Window segment"),
        })
        assert expert_problems(expert, allow=allowed) == [], expert
