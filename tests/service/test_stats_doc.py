"""The statistics document: totals across reloads/workers, its text form, its metrics."""

from __future__ import annotations

from probe.service.metrics import families
from probe.service.runner import _retired
from probe.service.stats import format_text, merge, totals


def _doc(received: int, active: int, records: int, flows: int) -> dict:
    return {
        "observation_points": [{"name": "mirror", "interface": "eth1", "packets_read": received,
                                "packets_decoded": received - 1, "ignored": {"truncated": 1},
                                "capture": {"received": received, "dropped": 2, "ifdropped": 3}}],
        "selectors": [{"selection_process": "All", "name": "all",
                       "packets_observed": received - 1, "packets_dropped": 0}],
        "caches": {"Flows": {"flows_created": flows, "active": active, "records": records,
                             "expired": {"1": records - 1, "4": 1}, "packets_dropped": 0}},
        "exporting_processes": {"Export": {"nfcapd": {
            "messages": 5, "records": records, "bytes": 1000, "failures": 1, "queued": 4,
            "dropped": 0, "connected": 1}}},
    }


def test_merge_adds_counters_by_name() -> None:
    a, b = _doc(100, 10, 50, 60), _doc(40, 5, 20, 25)
    b["observation_points"].append({"name": "other", "packets_decoded": 9, "capture": {}})
    m = merge(a, b)
    assert [p["name"] for p in m["observation_points"]] == ["mirror", "other"]
    assert m["observation_points"][0]["capture"] == {"received": 140, "dropped": 4,
                                                     "ifdropped": 6}
    assert m["observation_points"][0]["ignored"] == {"truncated": 2}
    assert m["observation_points"][0]["interface"] == "eth1"
    assert m["caches"]["Flows"]["expired"] == {"1": 68, "4": 2}
    assert m["exporting_processes"]["Export"]["nfcapd"]["records"] == 70
    assert totals(m) == {"received": 140, "dropped": 4, "ifdropped": 6, "decoded": 147,
                         "active_flows": 15, "flows_expired": 70, "records_exported": 70}
    assert a == _doc(100, 10, 50, 60)  # inputs untouched


def test_a_retired_pipeline_adds_no_gauges() -> None:
    old = _retired(_doc(100, 10, 50, 60))
    assert old["caches"]["Flows"]["active"] == 0
    assert old["exporting_processes"]["Export"]["nfcapd"]["queued"] == 0
    assert old["exporting_processes"]["Export"]["nfcapd"]["connected"] == 0
    m = merge(old, _doc(40, 5, 20, 25))
    assert m["caches"]["Flows"]["active"] == 5
    assert m["caches"]["Flows"]["flows_created"] == 85


def test_text_shows_what_softflowctl_statistics_shows_and_more() -> None:
    doc = _doc(100, 10, 50, 60)
    doc["service"] = {"version": "0.1.0", "pid": 42, "uptime_s": 90061.5, "workers": 2,
                      "config": "/etc/flowprobe.json", "reloads": 1, "reload_failures": 1,
                      "last_reload_error": "x.json: bad"}
    text = format_text(doc)
    lines = text.splitlines()
    assert lines[0] == "flowprobe 0.1.0, pid 42, up 1d 1:01:01, 2 capture worker(s)"
    for expected in ("  last failed reload: x.json: bad",
                     "observation point mirror (eth1)",
                     "  packets received by libpcap  100",
                     "  packets dropped by libpcap   2",
                     "  packets dropped by interface 3",
                     "  ignored (truncated) 1",
                     "selector All/all: packetsObserved 99, packetsDropped 0",
                     "  active flows                 10",
                     "    idle timeout               49",
                     "    forced end                 1",
                     "  destination nfcapd: messages 5, records 50, bytes 1000, failures 1, "
                     "records not sent 0, queued 4"):
        assert expected in lines, expected


def test_metrics_carry_the_same_counters() -> None:
    doc = _doc(100, 10, 50, 60)
    doc["service"] = {"reloads": 2, "reload_failures": 1}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in families(doc) for s in fam.samples}
    op = (("interface", "eth1"), ("observation_point", "mirror"))
    assert samples[("flowprobe_packets_received_total", op)] == 100
    assert samples[("flowprobe_packets_dropped_total", op)] == 2
    assert samples[("flowprobe_packets_ifdropped_total", op)] == 3
    assert samples[("flowprobe_packets_ignored_total", (*op, ("reason", "truncated")))] == 1
    assert samples[("flowprobe_cache_active_flows", (("cache", "Flows"),))] == 10
    assert samples[("flowprobe_cache_flows_expired_total",
                    (("cache", "Flows"), ("reason", "forced_end")))] == 1
    dest = (("destination", "nfcapd"), ("exporting_process", "Export"))
    assert samples[("flowprobe_export_records_total", dest)] == 50
    assert samples[("flowprobe_export_failures_total", dest)] == 1
    assert samples[("flowprobe_export_records_resent_total", dest)] == 0
    assert samples[("flowprobe_reloads_total", (("result", "failed"),))] == 1


def test_records_sent_again_over_tcp_are_shown() -> None:
    doc = _doc(100, 10, 50, 60)
    doc["exporting_processes"]["Export"]["nfcapd"].update(resent=7, unconfirmed=2)
    assert ("  destination nfcapd: messages 5, records 50, bytes 1000, failures 1, records not "
            "sent 0, queued 4, sent again 7, unconfirmed 2") in format_text(doc).splitlines()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in families(doc) for s in fam.samples}
    dest = (("destination", "nfcapd"), ("exporting_process", "Export"))
    assert samples[("flowprobe_export_records_resent_total", dest)] == 7
    assert samples[("flowprobe_export_records_unconfirmed_total", dest)] == 2


def test_metrics_endpoint_serves_the_snapshot_on_loopback() -> None:
    import urllib.request

    from probe.service.metrics import serve

    doc = _doc(100, 10, 50, 60)
    server = serve(lambda: doc, 0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert (b'flowprobe_packets_received_total{interface="eth1",observation_point="mirror"} '
                b"100.0") in text
        doc.clear()
        doc["caches"] = {"Flows": {"active": 3}}  # every scrape reads a fresh snapshot
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert b'flowprobe_cache_active_flows{cache="Flows"} 3.0' in text
    finally:
        server.shutdown()
