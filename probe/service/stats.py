"""The statistics document behind ``flowprobe stats``, the metrics endpoint and its text form.

One JSON-able dict: the pipeline's counters (observation points with libpcap's counters,
selectors, caches) plus every export destination's counters. Counters are totals since the
probe started: a reload adds the retired pipeline's final counters to the new one's, and
capture workers add up the same way (``merge``), so every counter only grows.
"""

from __future__ import annotations

import os
import time
from typing import Any

from probe import __version__
from probe.ie.reasons import FLOW_END_REASONS

COMMAND_LINE = "(command-line flags)"  # the config of `flowprobe run -i`: no file
COMMANDS = ("stats", "ping")  # what ``answer`` answers


def pipeline_document(pipeline: Any) -> dict[str, Any]:
    """Counters of one running (or finished) pipeline."""
    doc = pipeline.stats().as_dict()
    points = {op.name: op for op in pipeline.config.observation_points}
    for p in doc["observation_points"]:
        op = points.get(p["name"])
        p["interface"] = (op.if_names[0] if op is not None and op.if_names else
                          op.offline_file if op is not None else None)
        for k in ("received", "dropped", "ifdropped"):
            p["capture"].setdefault(k, 0)
    for c in doc["caches"].values():
        c["expired"] = {str(k): v for k, v in c["expired"].items()}
    doc["exporting_processes"] = pipeline.export_stats()
    return doc


def complete(doc: dict[str, Any], *, config: str, started: float, workers: int,
             reloads: int, reload_failures: int, last_reload_error: str | None
             ) -> dict[str, Any]:
    """Add the ``service`` section (and empty sections a probe without traffic lacks)."""
    for k, empty in (("observation_points", []), ("selectors", []), ("caches", {}),
                     ("exporting_processes", {})):
        doc.setdefault(k, empty)
    doc["service"] = {
        "version": __version__, "pid": os.getpid(), "config": config,
        "uptime_s": round(time.time() - started, 3), "workers": workers,
        "reloads": reloads, "reload_failures": reload_failures,
        "last_reload_error": last_reload_error,
    }
    return doc


def answer(request: dict[str, Any], snapshot: Any) -> dict[str, Any]:
    """The control-socket commands every probe process answers."""
    command = request.get("command")
    if command == "stats":
        return {"stats": snapshot()}
    if command == "ping":
        return {"pid": os.getpid(), "version": __version__}
    raise ValueError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")


def _key(item: dict[str, Any]) -> tuple:
    return (item.get("selection_process"), item.get("name"))


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Add counters of ``b`` to ``a`` (numbers add, dicts merge, named lists merge by name)."""
    out = dict(a)
    for k, vb in b.items():
        va = out.get(k)
        if va is None or isinstance(va, bool) or isinstance(vb, bool):
            out[k] = vb
        elif isinstance(va, int | float) and isinstance(vb, int | float):
            out[k] = va + vb
        elif isinstance(va, dict) and isinstance(vb, dict):
            out[k] = merge(va, vb)
        elif isinstance(va, list) and isinstance(vb, list):
            items = {_key(x): x for x in va}
            for x in vb:
                items[_key(x)] = merge(items[_key(x)], x) if _key(x) in items else x
            out[k] = list(items.values())
        else:
            out[k] = vb
    return out


def totals(doc: dict[str, Any]) -> dict[str, int]:
    """Headline numbers (for the stop line in the log and for tests)."""
    points = doc.get("observation_points", [])
    dests = [d for ep in doc.get("exporting_processes", {}).values() for d in ep.values()]
    caches = doc.get("caches", {}).values()
    return {
        "received": sum(p["capture"].get("received", 0) for p in points),
        "dropped": sum(p["capture"].get("dropped", 0) for p in points),
        "ifdropped": sum(p["capture"].get("ifdropped", 0) for p in points),
        "decoded": sum(p.get("packets_decoded", 0) for p in points),
        "active_flows": sum(c.get("active", 0) for c in caches),
        "flows_expired": sum(c.get("records", 0) for c in caches),
        "records_exported": sum(d.get("records", 0) for d in dests),
    }


def _uptime(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    return (f"{days}d " if days else "") + f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def format_text(doc: dict[str, Any]) -> str:
    """What ``flowprobe stats`` prints: softflowctl's statistics and more, one fact a line."""
    svc = doc.get("service", {})
    lines = [f"flowprobe {svc.get('version', '?')}, pid {svc.get('pid', '?')}, "
             f"up {_uptime(svc.get('uptime_s', 0))}, {svc.get('workers', 1)} capture worker(s)",
             f"config {svc.get('config', '?')}: reloads {svc.get('reloads', 0)}, "
             f"failed reloads {svc.get('reload_failures', 0)}"]
    if svc.get("last_reload_error"):
        lines.append(f"  last failed reload: {svc['last_reload_error']}")
    for p in doc.get("observation_points", []):
        cap = p.get("capture", {})
        lines += [f"observation point {p['name']} ({p.get('interface') or '-'})",
                  f"  packets received by libpcap  {cap.get('received', 0)}",
                  f"  packets dropped by libpcap   {cap.get('dropped', 0)}",
                  f"  packets dropped by interface {cap.get('ifdropped', 0)}",
                  f"  packets read                 {p.get('packets_read', 0)}",
                  f"  packets decoded              {p.get('packets_decoded', 0)}"]
        lines += [f"  ignored ({reason}) {n}" for reason, n in sorted(p.get("ignored", {}).items())]
    for s in doc.get("selectors", []):
        lines.append(f"selector {s['selection_process']}/{s['name']}: packetsObserved "
                     f"{s['packets_observed']}, packetsDropped {s['packets_dropped']}")
    for name, c in doc.get("caches", {}).items():
        lines += [f"cache {name}",
                  f"  active flows                 {c.get('active', 0)}",
                  f"  flows created                {c.get('flows_created', 0)}",
                  f"  flows expired                {c.get('records', 0)}"]
        for reason, n in sorted(c.get("expired", {}).items(), key=lambda kv: int(kv[0])):
            label = FLOW_END_REASONS.get(int(reason), f"reason {reason}")
            lines.append(f"    {label:<26} {n}")
        if c.get("packets_dropped"):
            lines.append(f"  packets not metered (cache full) {c['packets_dropped']}")
    for ep, dests in doc.get("exporting_processes", {}).items():
        lines.append(f"exporting process {ep}")
        for dest, d in dests.items():
            lines.append(f"  destination {dest}: messages {d.get('messages', 0)}, records "
                         f"{d.get('records', 0)}, bytes {d.get('bytes', 0)}, failures "
                         f"{d.get('failures', 0)}, records not sent {d.get('dropped', 0)}, "
                         f"queued {d.get('queued', 0)}"
                         + (f", sent again {d['resent']}" if d.get("resent") else "")
                         + (f", unconfirmed {d['unconfirmed']}" if d.get("unconfirmed")
                            else ""))
    return "\n".join(lines) + "\n"
