"""The collector's decoding core: messages in, flow batches out, nothing ever raised.

Pure with respect to I/O: the caller supplies the bytes, who sent them and when, so the same
core serves the UDP/TCP loop, the in-process ``Collector`` and the fuzz tests.

``feed`` reads one message: headers, templates, sequence numbers and options records at once;
flow Data Sets are queued (``probe.collect.pending``). ``flush`` decodes what is queued as
columns and returns ``FlowBatch``es. ``decode`` is both, for one message, as ``Record``s.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

import numpy as np

from probe.collect import ipfix, netflow5, netflow9, sflow
from probe.collect.columns import INTEGER
from probe.collect.flows import FlowBatch, Record
from probe.collect.limits import DEFAULT_LIMITS, Limits
from probe.collect.session import SessionTable
from probe.collect.stats import CollectStats

_BY_VERSION = {5: netflow5.decode, 9: netflow9.decode, 10: ipfix.decode}


class Decoder:
    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.stats = CollectStats()
        self.table = SessionTable(limits, self.stats)
        self.sflow = sflow.SflowDecoder(self.stats, limits.max_sessions)

    def feed(self, data: bytes, exporter: str, session: Hashable | None = None,
             received_ns: int | None = None, now: float | None = None,
             accept: str = "netflow") -> None:
        """Read one message from ``exporter`` (its IP as text) on transport ``session``.

        ``session`` defaults to the exporter address; UDP callers pass (address, port), TCP
        callers the connection. ``accept`` is what the listener takes (``netflow``, ``sflow``
        or ``flow`` for both, ``probe.collect.listen``). Malformed input is counted in
        ``stats.malformed``.
        """
        if received_ns is None:
            received_ns = time.time_ns()
        if now is None:
            now = time.monotonic()
        if len(data) < 2:
            self.stats.bad("short_header")
            return
        is_sflow = data[:4] == sflow.MAGIC  # NetFlow/IPFIX versions are never 0 in octets 0..1
        if is_sflow != (accept == "sflow") and accept != "flow":
            self.stats.bad("sflow_on_netflow_listener" if is_sflow else "not_sflow")
            return
        if is_sflow:
            try:
                self.sflow.feed(data, exporter, received_ns)
            except Exception:  # as below
                self.stats.bad("internal_error")
            return
        fn = _BY_VERSION.get(int.from_bytes(data[:2], "big"))
        if fn is None:
            self.stats.bad("bad_version")
            return
        s = self.table.get(exporter if session is None else session, exporter)
        self.table.now = now
        self.table.expire(now, s)
        try:
            fn(bytes(data), self.table, s, exporter, received_ns, now)
        except Exception:  # a decoder bug must not kill the collector: count it, go on
            self.stats.bad("internal_error")

    @property
    def pending_records(self) -> int:
        """Flow records queued for the next ``flush`` (sFlow: samples)."""
        return self.table.pending.records + self.sflow.pending

    def flush(self) -> list[FlowBatch]:
        """Decode everything queued; the batches in the order their runs started."""
        t0 = time.perf_counter()
        try:
            out = self.table.pending.flush()
        except Exception:  # as in feed: counted, never raised
            self.stats.bad("internal_error")
            out = []
        try:
            out += self.sflow.flush()
        except Exception:
            self.stats.bad("internal_error")
        st = self.stats
        st.decode_seconds += time.perf_counter() - t0
        st.flushes += 1
        for b in out:
            for name, attr in (("packets", "flow_packets"), ("bytes", "flow_octets")):
                c = b.columns.get(name)
                if c is not None and c.kind in INTEGER:
                    setattr(st, attr, getattr(st, attr) + int(c.data.sum(dtype=np.uint64)))
        return out

    def decode(self, data: bytes, exporter: str, session: Hashable | None = None,
               received_ns: int | None = None, now: float | None = None,
               accept: str = "netflow") -> list[Record]:
        """``feed`` one message and ``flush``: its flow records (and any released by a
        template it carried), one ``Record`` each. For tests and small callers."""
        self.feed(data, exporter, session, received_ns, now, accept)
        return [r for b in self.flush() for r in b.records()]

    def expire(self, now: float | None = None) -> None:
        self.table.expire(time.monotonic() if now is None else now)

    def close_session(self, session: Hashable) -> None:
        self.table.close(session)

    def finish(self) -> None:
        """At shutdown: data sets still waiting for a template will never be decoded."""
        n = self.table.drop_held()
        if n:
            self.stats.bad("held_never_resolved", n)
        for key in list(self.table.sessions):
            self.table.close(key)
