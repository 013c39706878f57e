"""``--metrics-port``: the statistics document as Prometheus metrics.

A custom collector turns a fresh statistics document into metric families at every scrape, so
the endpoint, ``flowprobe stats`` and the control socket always agree. Bound to 127.0.0.1
unless ``--metrics-address`` says otherwise: the counters describe the monitored network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from probe.errors import UserError
from probe.ie.reasons import FLOW_END_REASONS

log = logging.getLogger(__name__)
Snapshot = Callable[[], dict[str, Any]]


def _reason_label(code: str) -> str:
    return FLOW_END_REASONS.get(int(code), f"reason {code}").replace(" ", "_")


def families(doc: dict[str, Any]) -> Iterator[Any]:
    """Metric families of one statistics document."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def counter(name: str, doc_: str, labels: list[str]) -> CounterMetricFamily:
        return CounterMetricFamily(f"flowprobe_{name}", doc_, labels=labels)

    op = ["observation_point", "interface"]
    received = counter("packets_received", "Packets libpcap received", op)
    dropped = counter("packets_dropped", "Packets libpcap dropped (buffer full)", op)
    ifdropped = counter("packets_ifdropped", "Packets the interface dropped", op)
    decoded = counter("packets_decoded", "Packets decoded for metering", op)
    ignored = counter("packets_ignored", "Packets not metered, by reason", [*op, "reason"])
    for p in doc.get("observation_points", []):
        lab = [p["name"], p.get("interface") or ""]
        cap = p.get("capture", {})
        received.add_metric(lab, cap.get("received", 0))
        dropped.add_metric(lab, cap.get("dropped", 0))
        ifdropped.add_metric(lab, cap.get("ifdropped", 0))
        decoded.add_metric(lab, p.get("packets_decoded", 0))
        for reason, n in p.get("ignored", {}).items():
            ignored.add_metric([*lab, reason], n)
    yield from (received, dropped, ifdropped, decoded, ignored)

    sl = ["selection_process", "selector"]
    observed = counter("selector_packets_observed", "packetsObserved per selector", sl)
    sdropped = counter("selector_packets_dropped", "packetsDropped per selector", sl)
    for s in doc.get("selectors", []):
        observed.add_metric([s["selection_process"], s["name"]], s["packets_observed"])
        sdropped.add_metric([s["selection_process"], s["name"]], s["packets_dropped"])
    yield from (observed, sdropped)

    active = GaugeMetricFamily("flowprobe_cache_active_flows", "Flows in the cache",
                               labels=["cache"])
    created = counter("cache_flows_created", "Flows created", ["cache"])
    expired = counter("cache_flows_expired", "Flow records expired, by flowEndReason",
                      ["cache", "reason"])
    full = counter("cache_packets_dropped", "Packets not metered: cache full", ["cache"])
    for name, c in doc.get("caches", {}).items():
        active.add_metric([name], c.get("active", 0))
        created.add_metric([name], c.get("flows_created", 0))
        full.add_metric([name], c.get("packets_dropped", 0))
        for reason, n in c.get("expired", {}).items():
            expired.add_metric([name, _reason_label(reason)], n)
    yield from (active, created, expired, full)

    dl = ["exporting_process", "destination"]
    exp = {k: counter(f"export_{k}", f"Export {k.replace('_', ' ')} per destination", dl)
           for k in ("messages", "records", "bytes", "failures")}
    exp["dropped"] = counter("export_records_dropped", "Flow records never sent", dl)
    exp["resent"] = counter("export_records_resent",
                            "Flow records sent again after a lost TCP connection", dl)
    exp["unconfirmed"] = counter("export_records_unconfirmed",
                                 "Flow records sent on a lost TCP connection, not sent again",
                                 dl)
    queued = GaugeMetricFamily("flowprobe_export_queued_records", "Records waiting to be sent",
                               labels=dl)
    for ep, dests in doc.get("exporting_processes", {}).items():
        for dest, d in dests.items():
            for k, fam in exp.items():
                fam.add_metric([ep, dest], d.get(k, 0))
            queued.add_metric([ep, dest], d.get("queued", 0))
    yield from (*exp.values(), queued)

    svc = doc.get("service", {})
    reloads = counter("reloads", "Config reloads (SIGHUP), by result", ["result"])
    reloads.add_metric(["ok"], svc.get("reloads", 0))
    reloads.add_metric(["failed"], svc.get("reload_failures", 0))
    yield reloads


class _Collector:
    def __init__(self, snapshot: Callable[[], Any], make: Callable[[Any], Iterator[Any]]
                 ) -> None:
        self.snapshot = snapshot
        self.make = make

    def collect(self) -> Iterator[Any]:
        try:
            doc = self.snapshot()
        except Exception:  # a scrape must not print a traceback (wsgiref would, on many lines)
            log.exception("metrics: cannot read the statistics")
            return iter(())
        return self.make(doc)


def serve(snapshot: Callable[[], Any], port: int, address: str = "127.0.0.1",
          make: Callable[[Any], Iterator[Any]] = families) -> Any:
    """Start the HTTP endpoint in a daemon thread; returns the server (``shutdown()`` it).

    ``make`` turns what ``snapshot`` returns into metric families (``flowprobe collect``
    serves its own, ``probe.collect.metrics``)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snapshot, make))
    try:
        server, _thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise UserError(f"--metrics-port {port}: cannot listen on {address}: "
                        f"{exc.strerror or exc}") from None
    return server
