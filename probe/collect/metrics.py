"""``flowprobe collect --metrics-port``: the collector's statistics as Prometheus metrics.

Families are made from a fresh ``CollectStats`` at every scrape (the sum of the workers' last
reports when there are workers), as ``flowprobe run``'s endpoint does with its statistics
document, so what is scraped and what is printed at exit are the same counters:

- ``flowprobe_collect_messages_total`` / ``_records_total`` by exporter and type (version);
- ``flowprobe_collect_decode_errors_total`` by kind (every refusal and malformed reason);
- ``flowprobe_collect_templates`` (held now), ``_template_records_total``;
- ``flowprobe_collect_sequence_lost_total`` by exporter, observation domain and unit (records;
  NetFlow v9 counts export packets);
- ``flowprobe_collect_socket_drops_total`` by listening port (the kernel's count of datagrams
  lost to a full receive buffer);
- ``flowprobe_collect_decode_seconds_total`` and ``_decode_runs_total``;
- ``flowprobe_collect_publish_errors_total`` by transport: a transport that cannot deliver
  (e.g. NATS) counts there (``CollectStats.publish_errors``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from probe.collect.stats import CollectStats


def families(st: CollectStats) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
        return CounterMetricFamily(f"flowprobe_collect_{name}", doc, labels=labels)

    msgs = counter("messages", "Export messages decoded", ["exporter", "type"])
    recs = counter("records", "Flow records decoded", ["exporter", "type"])
    for (exporter, kind, what), n in sorted(st.by_exporter.items()):
        (msgs if what == "messages" else recs).add_metric([exporter, kind], n)
    yield from (msgs, recs)
    opts = counter("options_records", "Options records applied", [])
    opts.add_metric([], st.options_records)
    yield opts
    errors = counter("decode_errors", "Messages, sets or records refused, by kind", ["kind"])
    for reason, n in sorted(st.malformed.items()):
        errors.add_metric([reason], n)
    yield errors
    known = GaugeMetricFamily("flowprobe_collect_templates", "Templates known now")
    known.add_metric([], st.templates_known)
    seen = counter("template_records", "Template records received (refreshes included)", [])
    seen.add_metric([], st.templates)
    yield from (known, seen)
    lost = counter("sequence_lost", "Units missing by sequence number (IPFIX and v5: records; "
                   "NetFlow v9: export packets)", ["exporter", "observation_domain", "unit"])
    for (exporter, domain, unit), n in sorted(st.lost_by_domain.items()):
        lost.add_metric([exporter, str(domain), unit], n)
    yield lost
    drops = counter("socket_drops", "Datagrams the kernel dropped: receive buffer full",
                    ["listen"])
    per_port: dict[str, int] = {}
    for port, n, _ in st.sockets.values():
        per_port[port] = per_port.get(port, 0) + n
    for port, n in sorted(per_port.items()):
        drops.add_metric([port], n)
    yield drops
    secs = counter("decode_seconds", "Time spent decoding queued Data Sets", [])
    secs.add_metric([], st.decode_seconds)
    runs = counter("decode_runs", "Decode runs (each takes every queued Data Set)", [])
    runs.add_metric([], st.flushes)
    yield from (secs, runs)
    pub = counter("publish_errors", "Records a transport could not publish", ["transport"])
    for transport, n in sorted(st.publish_errors.items()):
        pub.add_metric([transport], n)
    yield pub
