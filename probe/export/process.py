"""The Exporting Process runtime: encodes each RecordBatch once and feeds its destinations.

IPFIX and NetFlow v9 data records of the same Template are the same bytes, so a batch is
encoded at most twice (templated, and v5) whatever the number of destinations. exportMode:

- parallel: every destination gets every record;
- loadBalancing: records go round-robin in message-sized pieces (the records one message of the
  receiving destination holds), so each message lands whole on one collector; destinations that
  are down (TCP) or failed a send in the last seconds (UDP port unreachable) are skipped while
  another one is usable;
- fallback: records go to the first destination that is up (TCP: connected) and has not failed
  a send lately; what a TCP destination queued while down moves on to the next one that is up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from probe.cache.records import RecordBatch
from probe.config.model import Config, Destination, ExportingProcess
from probe.config.pacing import is_offline
from probe.export.netflow5 import encode_v5
from probe.export.options import (
    OptionsPlan,
    feeding_selectors,
    reported_sequences,
    sampling_interval,
)
from probe.export.protocol import Ipfix, NetflowV5, NetflowV9, Protocol
from probe.export.session import DEFAULT_QUEUE_LIMIT, DestinationRuntime
from probe.export.templates import (
    Chunk,
    TemplateRegistry,
    cache_templates,
    concat_chunks,
    encode_batch,
)

log = logging.getLogger(__name__)


V5_UPTIME_WRAP_US = (1 << 32) * 1000  # 2^32 ms of sysUptime: 49.7 days


@dataclass(slots=True)
class Encoded:
    """A batch encoded for one protocol: ``chunk`` None when it carries none of the ``n``
    records it stands for (biflows to NetFlow: the one-way records); ``kept`` (running count
    of records kept, from 0) when it carries only some."""

    chunk: Chunk | None
    n: int
    kept: np.ndarray | None = None

    def span(self, a: int, b: int) -> tuple[int, int]:
        """The chunk's records for the batch's records ``a:b``."""
        return (a, b) if self.kept is None else (int(self.kept[a]), int(self.kept[b]))


class ExportingProcessRuntime:
    def __init__(self, ep: ExportingProcess, config: Config, sys_init_us: int,
                 ignored_packets: Callable[[], int] = lambda: 0,
                 queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.ep = ep
        self.sys_init_us = sys_init_us
        self.registry = TemplateRegistry()
        names = [e.name for e in config.exporting_processes]
        ep_id = names.index(ep.name) + 1 if ep.name in names else 1
        selectors = feeding_selectors(ep, config)
        sequences = reported_sequences(ep, config)
        interval, random = sampling_interval(selectors)
        period_ms = [o.options_timeout_ms for o in ep.options if o.options_timeout_ms > 0]
        offline = is_offline(config)  # nothing is lost by waiting for a collector
        self.destinations: list[DestinationRuntime] = []
        for d in ep.destinations:
            proto = _protocol(d, interval, random)
            period_us = min(period_ms) * 1000 if period_ms else \
                d.options_template_refresh_timeout * 1_000_000
            plan = OptionsPlan(d.ipfix_version, ep_id, selectors, self.registry, sequences)
            self.destinations.append(DestinationRuntime(d, proto, plan, sys_init_us, period_us,
                                                        queue_limit, ignored_packets,
                                                        wait_when_full=offline))
        files = [d for d in self.destinations if d.dest.transport == "file"]
        if files:  # an IPFIX File starts with every layout it holds (probe.export.filewriter)
            templates = cache_templates(ep, config, self.registry)
            for d in files:
                d.announce(templates, sys_init_us)
        self._rr = 0
        self._warned_v6 = False
        self._warned_old = False

    # ------------------------------------------------------------------ pipeline interface
    def export(self, records: RecordBatch, now_us: int) -> None:
        if len(records) == 0:
            self.tick(now_us)
            return
        one_way = [d.protocol.version != 10 for d in self.destinations]
        if records.split is not None and any(one_way) and (
                self.ep.export_mode != "parallel" or all(one_way)):
            # Biflows (RFC 5103) to NetFlow v5/v9, which have no reverse IEs: two one-way
            # records each. Balancing and fallback move records between destinations, so
            # there every destination gets them one-way.
            for part in records.split():
                self.export(part, now_us)
            return
        encoded: dict[bool | tuple[bool, bool], Encoded] = {}

        def chunk_for(d: DestinationRuntime) -> Encoded:
            v5 = d.protocol.version == 5
            if records.split is not None and d.protocol.version != 10:  # parallel, mixed
                key = (v5, True)
                if key not in encoded:
                    parts = [self._encode(part, v5, now_us) for part in records.split()]
                    kept = [e.chunk for e in parts if e.chunk is not None and e.chunk.n]
                    encoded[key] = Encoded(concat_chunks(kept) if kept else None,
                                           sum(e.n for e in parts))
                return encoded[key]
            if v5 not in encoded:
                encoded[v5] = self._encode(records, v5, now_us)
            return encoded[v5]

        mode = self.ep.export_mode
        if mode == "parallel":
            for d in self.destinations:
                self._submit(d, chunk_for(d), now_us)
        elif mode == "loadBalancing":
            self._balance(records, chunk_for, now_us)
        else:
            d = self._fallback_target()
            self._submit(d, chunk_for(d), now_us)

    @staticmethod
    def _submit(d: DestinationRuntime, enc: Encoded, now_us: int) -> None:
        """The records to ``d``: those its protocol can carry, the others counted."""
        if enc.chunk is None:
            d.counters.not_exportable += enc.n
            return
        d.counters.not_exportable += enc.n - enc.chunk.n
        if enc.chunk.n:
            d.submit(enc.chunk, now_us)

    def tick(self, now_us: int) -> None:
        for d in self.destinations:
            d.tick(now_us)
        if self.ep.export_mode == "fallback":
            self._move_stranded(now_us)

    def flush(self, now_us: int) -> None:
        """Send what waits for a full message now (``flowprobe expire-all``)."""
        for d in self.destinations:
            d.pump(now_us, force=True)

    def send_templates(self, now_us: int) -> dict[str, str]:
        """Every destination's Templates again now; per destination, what happened."""
        return {d.name: d.send_templates(now_us) for d in self.destinations}

    def close(self, now_us: int) -> None:
        if self.ep.export_mode == "fallback":
            self._move_stranded(now_us)
        for d in self.destinations:
            d.close(now_us)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters per destination name."""
        return {d.name: d.stats() for d in self.destinations}

    # ------------------------------------------------------------------ helpers
    def _encode(self, records: RecordBatch, v5: bool, now_us: int) -> Encoded:
        if not v5:
            return Encoded(encode_batch(records, self.registry.for_batch(records)), len(records))
        if records.ip_version != 4:
            if not self._warned_v6:
                log.warning("%s: NetFlow v5 cannot carry IPv6 flows; they are counted as "
                            "not exportable", self.ep.name)
                self._warned_v6 = True
            return Encoded(None, len(records))
        # First and Last are 32-bit sysUptime milliseconds: a collector finds a flow's start
        # as the header's uptime minus First, which wraps for a flow that started 49.7 days
        # or more before the export; such flows are not exportable.
        keep = now_us - records.columns["_start_us"] < V5_UPTIME_WRAP_US
        if keep.all():
            return Encoded(encode_v5(records), len(records))
        if not self._warned_old:
            log.warning("%s: NetFlow v5 cannot carry flows that started 49.7 days or more "
                        "before their export (sysUptime wraps); they are counted as not "
                        "exportable", self.ep.name)
            self._warned_old = True
        kept = replace(records, columns={k: v[keep] for k, v in records.columns.items()},
                       split=None)
        return Encoded(encode_v5(kept), len(records), np.concatenate(([0], np.cumsum(keep))))

    def _balance(self, records: RecordBatch, chunk_for: Callable, now_us: int) -> None:
        n = len(records)
        pos = 0
        for d in self.destinations:
            d.poll()
        usable = [d for d in self.destinations if d.healthy] or self.destinations
        while pos < n:
            d = usable[self._rr % len(usable)]
            self._rr += 1
            enc = chunk_for(d)
            if enc.chunk is None:
                take = n - pos
                d.counters.not_exportable += take
            else:
                take = min(max(d.records_per_message(enc.chunk), 1), n - pos)
                a, b = enc.span(pos, pos + take)
                d.counters.not_exportable += take - (b - a)
                if b > a:
                    d.submit(enc.chunk.slice(a, b), now_us)
            pos += take

    def _fallback_target(self) -> DestinationRuntime:
        for d in self.destinations:
            d.poll()
            if d.healthy:
                return d
        for d in self.destinations:
            if d.up:
                return d
        return self.destinations[0]

    def _move_stranded(self, now_us: int) -> None:
        target = self._fallback_target()
        if not target.up:
            return
        for d in self.destinations:
            if d is target or d.up or not d.queued:
                continue
            if (d.protocol.version == 5) != (target.protocol.version == 5):
                continue  # v5 records and templated records are encoded differently
            for c in d.take_pending():
                target.submit(c, now_us)


def _protocol(d: Destination, interval: int, random: bool) -> Protocol:
    if d.ipfix_version == 5:
        return NetflowV5(interval, random)
    if d.ipfix_version == 9:
        return NetflowV9()
    return Ipfix()


def open_exporting_process(ep: ExportingProcess, config: Config, sys_init_us: int,
                           ignored_packets: Callable[[], int] = lambda: 0
                           ) -> ExportingProcessRuntime:
    """Start ``ep``: ``sys_init_us`` is the probe's start (sysUpTime 0), ``ignored_packets``
    what the observation points could not meter so far (ignoredPacketTotalCount in the
    reliability options record, RFC 7011 §4.3)."""
    return ExportingProcessRuntime(ep, config, sys_init_us, ignored_packets)
