"""Flow records waiting for their column decode, in runs of one Layout.

A flow Data Set of a fixed-length Template is not decoded when its message is read: its body
joins the ``Run`` of its Layout (every Data Set of that Template shape and message type since
the last flush, from any exporter), with the header facts and domain state it was read under.
``Pending.flush`` then decodes each run with one numpy record view and turns it into a
``FlowBatch``: the per-record Python cost is gone, and the per-call cost of numpy is paid once
per run instead of once per message. The server flushes when enough records wait or the oldest
has waited long enough (``probe.collect.server``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from probe.collect.columns import Column, Layout, tok, u64
from probe.collect.flows import Context, FlowBatch, build_batch

# One Data Set's facts: received_ns, sequence, domain, exporter, export_secs, sys_uptime_ms
# (-1: none), unix_nsecs, fallback rate, sys_init_ms (-1: unknown), the selector table.
SetFacts = tuple[int, int, int, str, int, int, int, int, int, dict[int, int]]


@dataclass(slots=True)
class Run:
    layout: Layout
    type: str
    bodies: list[bytes] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    facts: list[SetFacts] = field(default_factory=list)


@dataclass(slots=True)
class Pending:
    """Flow records decoded later, in runs; ``records`` and ``octets`` bound what waits."""

    runs: dict[tuple[int, str], Run] = field(default_factory=dict)
    ready: list[FlowBatch] = field(default_factory=list)  # per-record path, already built
    records: int = 0
    octets: int = 0

    def add(self, layout: Layout, msg_type: str, body: bytes, count: int,
            facts: SetFacts) -> None:
        key = (id(layout), msg_type)
        run = self.runs.get(key)
        if run is None:
            run = self.runs[key] = Run(layout, msg_type)
        run.bodies.append(body)
        run.counts.append(count)
        run.facts.append(facts)
        self.records += count
        self.octets += len(body)

    def flush(self) -> list[FlowBatch]:
        out, self.ready = self.ready, []
        runs, self.runs = self.runs, {}
        self.records = self.octets = 0
        for run in runs.values():
            n = sum(run.counts)
            raw = dict(zip(run.layout.names, run.layout.columns(b"".join(run.bodies)),
                           strict=True))
            ctx = context(run.facts, run.counts, run.type)
            if run.type == "NETFLOW_V5":
                raw = v5_fields(raw, ctx)
            out.append(build_batch(run.type, raw, ctx, n))
        return out


def context(facts: list[SetFacts], counts: list[int], msg_type: str) -> Context:
    """The per-row Context of Data Sets of ``counts`` records each."""
    reps = np.asarray(counts, dtype=np.int64)
    cols = list(zip(*facts, strict=True))

    def rep(i: int, dtype: type) -> np.ndarray:
        return np.repeat(np.asarray(cols[i], dtype=dtype), reps)

    def indexed(values: tuple, by_value: bool) -> tuple[list, np.ndarray]:
        # Selector tables are dicts (not hashable; one object per domain state, so identity
        # tells them apart); exporter addresses are text made afresh for every datagram,
        # so they are told apart by value (else each Data Set's was a value of its own,
        # and the JSON writer rendered hundreds of copies of one address per batch).
        ids: dict[object, int] = {}
        distinct: list = []
        idx = []
        for v in values:
            key = v if by_value else id(v)
            j = ids.get(key)
            if j is None:
                j = ids[key] = len(distinct)
                distinct.append(v)
            idx.append(j)
        return distinct, np.repeat(np.asarray(idx, dtype=np.int32), reps)

    exporters, exp_idx = indexed(cols[3], by_value=True)
    samplers, smp_idx = indexed(cols[9], by_value=False)
    uptime = rep(5, np.int64) if msg_type != "IPFIX" else None
    return Context(received_ns=rep(0, np.uint64), sequence=rep(1, np.uint64),
                   domain=rep(2, np.uint64), exporter=tok(exporters, exp_idx),
                   export_secs=rep(4, np.int64), sys_uptime_ms=uptime,
                   unix_nsecs=rep(6, np.int64), fallback_rate=rep(7, np.uint64),
                   sys_init_ms=rep(8, np.int64), sampler_table=smp_idx, samplers=samplers)


def v5_fields(raw: dict[str, Column], ctx: Context) -> dict[str, Column]:
    """NetFlow v5's record in IE terms: the ICMP type and code that exporters put in the
    destination port, and the header's engine type and id."""
    raw = {k: c for k, c in raw.items() if not k.startswith("pad")}
    proto = raw["protocolIdentifier"].data
    dport = raw["destinationTransportPort"].data
    icmp = proto == 1
    zero = np.zeros(1, dtype=np.uint64)
    raw["destinationTransportPort"] = Column(raw["destinationTransportPort"].kind,
                                             np.where(icmp, zero, dport))
    raw["icmpTypeCodeIPv4"] = Column(raw["destinationTransportPort"].kind,
                                     np.where(icmp, dport, zero))
    raw["engineType"] = u64(ctx.domain >> np.uint64(8))
    raw["engineId"] = u64(ctx.domain & np.uint64(0xFF))
    return raw
