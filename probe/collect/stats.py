"""Counters the collector prints at exit: what arrived, what was decoded, what was refused."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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

    def count_records(self, ctx: object, n: int) -> None:
        """Flow records of one Data Set (or v5 packet) decoded or queued for decoding."""
        self.records += n

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
        return "\n".join(lines)
