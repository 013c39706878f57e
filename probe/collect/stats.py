"""Counters the collector prints at exit and serves as metrics: what arrived, what was decoded,
what was refused, what was lost.

Per-exporter counters are kept for at most ``MAX_EXPORTERS`` exporter addresses (and as many
(exporter, domain) pairs for sequence gaps); the rest are summed under ``other``, so a flood of
spoofed source addresses cannot grow them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

MAX_EXPORTERS = 1024


@dataclass(slots=True)
class CollectStats:
    messages: Counter[str] = field(default_factory=Counter)  # by type: IPFIX, NETFLOW_V9, ...
    records: int = 0  # flow (data) records emitted
    options_records: int = 0  # options data records applied (sampling, init time, ...)
    templates: int = 0  # template records accepted (including refreshes)
    withdrawals: int = 0
    held: int = 0  # data sets held for a template not yet seen
    held_decoded: int = 0  # held data sets decoded when their template came
    malformed: Counter[str] = field(default_factory=Counter)  # by reason
    lost_records: int = 0  # sequence gaps: IPFIX (data records) and NetFlow v5 (flows)
    lost_packets: int = 0  # sequence gaps: NetFlow v9 (export packets)
    out_of_order: int = 0  # sequence numbers a little behind the expected one (reordering)
    sequence_resets: int = 0  # far behind: the exporter restarted
    sessions_evicted: int = 0
    decode_seconds: float = 0.0  # wall time spent decoding queued Data Sets into columns
    flushes: int = 0  # decode runs (each decodes every queued Data Set)
    flow_packets: int = 0  # sum of the flows' packet counters (the text table's total)
    flow_octets: int = 0
    # (exporter, message type) -> messages / flow records; (exporter, domain) -> units lost
    by_exporter: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    lost_by_domain: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    templates_known: int = 0  # templates held now (a gauge, set by the server's tick)
    publish_errors: Counter[str] = field(default_factory=Counter)  # by transport (e.g. nats)
    # sFlow: samples, lost datagrams, sampled headers decoded or ignored (probe.collect.sflow)
    sflow: Counter[str] = field(default_factory=Counter)
    # what an output format left out (probe.format: "bin: in_if left out", ...)
    output: Counter[str] = field(default_factory=Counter)
    exporters: set[str] = field(default_factory=set)  # the ones counted under their address
    # UDP socket inode -> (local port, datagrams dropped by the kernel, bytes queued)
    sockets: dict[int, tuple[str, int, int]] = field(default_factory=dict)

    def count_records(self, ctx: Any, n: int) -> None:
        """Flow records of one Data Set (or v5 packet) decoded or queued for decoding."""
        self.records += n
        self.by_exporter[(self._exporter(ctx.exporter), ctx.type, "records")] += n

    def message(self, exporter: str, msg_type: str) -> None:
        self.messages[msg_type] += 1
        self.by_exporter[(self._exporter(exporter), msg_type, "messages")] += 1

    def lost(self, exporter: str, domain: int, n: int, packets: bool = False) -> None:
        """A sequence gap: ``n`` records (NetFlow v9: export packets) never arrived."""
        if packets:
            self.lost_packets += n
        else:
            self.lost_records += n
        if not n:
            return
        key = (exporter, domain, "packets" if packets else "records")
        if key not in self.lost_by_domain and len(self.lost_by_domain) >= MAX_EXPORTERS:
            key = ("other", 0, key[2])
        self.lost_by_domain[key] += n

    def _exporter(self, exporter: str) -> str:
        if exporter in self.exporters:
            return exporter
        if len(self.exporters) >= MAX_EXPORTERS:
            return "other"
        self.exporters.add(exporter)
        return exporter

    @property
    def socket_drops(self) -> int:
        return sum(d for _, d, _ in self.sockets.values())

    def bad(self, reason: str, n: int = 1) -> None:
        self.malformed[reason] += n

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": dict(self.messages), "records": self.records,
            "options_records": self.options_records, "templates": self.templates,
            "withdrawals": self.withdrawals, "held": self.held,
            "held_decoded": self.held_decoded, "malformed": dict(self.malformed),
            "lost_records": self.lost_records, "lost_packets": self.lost_packets,
            "out_of_order": self.out_of_order, "sequence_resets": self.sequence_resets,
            "sessions_evicted": self.sessions_evicted,
        }

    def format(self) -> str:
        msgs = ", ".join(f"{k} {v}" for k, v in sorted(self.messages.items())) or "none"
        lines = [
            f"messages: {sum(self.messages.values())} ({msgs})",
            f"records: {self.records} flow, {self.options_records} options; "
            f"templates: {self.templates}, withdrawn {self.withdrawals}",
            f"held for template: {self.held} (decoded later {self.held_decoded})",
            f"sequence: lost records {self.lost_records}, lost v9 packets {self.lost_packets}, "
            f"out of order {self.out_of_order}, resets {self.sequence_resets}",
        ]
        total = sum(self.malformed.values())
        bad = ", ".join(f"{k} {v}" for k, v in sorted(self.malformed.items()))
        lines.append(f"malformed/refused: {total}" + (f" ({bad})" if bad else ""))
        if self.sessions_evicted:
            lines.append(f"sessions evicted: {self.sessions_evicted}")
        if self.sflow:
            lines.append(sflow_line(self.sflow))
        if self.output:
            lines.append("output: " + ", ".join(f"{k} {v}" for k, v in
                                                sorted(self.output.items())))
        if self.socket_drops:
            lines.append(f"datagrams dropped by the kernel (receive buffer full): "
                         f"{self.socket_drops}")
        return "\n".join(lines)


def sflow_line(c: Counter[str]) -> str:
    """What sFlow adds: samples, lost datagrams, sampled headers and what could not be read."""
    line = (f"sflow: flow samples {c['flow_samples']}, counter samples {c['counter_samples']}, "
            f"lost datagrams {c['lost_datagrams']}; headers decoded {c['headers_decoded']} of "
            f"{c['headers_read']}")
    main = {"flow_samples", "counter_samples", "lost_datagrams", "headers_read",
            "headers_decoded"}
    rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in main and v)
    return line + (f" ({rest})" if rest else "")


def merge(parts: list[CollectStats]) -> CollectStats:
    """The sum of several workers' statistics (each worker counts its own sockets)."""
    total = CollectStats()
    for p in parts:
        for f in fields(CollectStats):
            a, b = getattr(total, f.name), getattr(p, f.name)
            if isinstance(a, dict | set):  # a Counter adds, sockets (by inode) are distinct
                a.update(b)
            else:
                setattr(total, f.name, a + b)
    return total
