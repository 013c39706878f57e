"""``flowprobe stats --yang``: the running probe's state as RFC 6728's ``config false`` nodes.

The answer is the probe's operational datastore in RFC 7951 JSON: the configuration it runs
(the config file, normalised as ``flowprobe validate --rfc7951`` prints it) with the state
leaves RFC 6728 defines put into it, so a NETCONF-minded tool (or ``yanglint``, which the tests
run on it) reads one valid document:

- observation points: ``observationPointId`` (1-based, ``probe.config.psamp``);
- selection processes: ``selectionSequence`` (observation domain and id of each way packets
  take through it); selectors: ``packetsObserved``, ``packetsDropped``,
  ``selectorDiscontinuityTime``, a filterHash's ``outputRangeMin``/``Max``;
- caches: ``meteringProcessId``, ``dataRecords``, ``cacheDiscontinuityTime``, ``activeFlows``
  and, with ``maxFlows``, ``unusedCacheEntries``;
- exporting processes: ``exportingProcessId``; each UDP or TCP destination's
  ``transportSession`` (addresses and ports, status, bytes, messages, discarded messages,
  records, templates, options templates, start and discontinuity times); a fileWriter's counters.

Counters are totals since the probe started (over reloads and capture workers), so every
discontinuity time is the probe's start. 64-bit counters are strings, as RFC 7951 writes them.
The running config comes from the probe itself (the control socket's ``config`` command), not
from its file: the file may have changed since the probe loaded it, and ``run -i`` or a replay
have none.
"""

from __future__ import annotations

import time
from typing import Any

from probe.config.psamp import selection_sequences
from probe.config.semantic import cache_kind, destination_kind

_TS = "%Y-%m-%dT%H:%M:%SZ"


def yang_document(stats: dict[str, Any], running: dict[str, Any], now: float | None = None
                  ) -> dict[str, Any]:
    """The operational tree of the probe whose statistics document is ``stats`` and whose
    running config is ``running`` (goflowd form, as ``probe.config.dump`` writes it)."""
    from probe.config import load_data
    from probe.config.loader import check_data

    now = time.time() if now is None else now
    origin = "the probe's running config"
    doc = check_data(running, origin, replay=True)
    config = load_data(running, origin, replay=True)
    ipfix = doc["ietf-ipfix-psamp:ipfix"]
    started = time.strftime(_TS, time.gmtime(now - stats["service"]["uptime_s"]))

    for i, op in enumerate(ipfix.get("observationPoint", []), start=1):
        op["observationPointId"] = i
    selectors = {(s["selection_process"], s["name"]): s for s in stats.get("selectors", [])}
    sequences = selection_sequences(config)
    for sp in ipfix.get("selectionProcess", []):
        seqs = [{"observationDomainId": s.observation_point.observation_domain_id,
                 "selectionSequenceId": str(s.sequence_id)}
                for s in sequences if s.selection_process.name == sp["name"]]
        if seqs:
            sp["selectionSequence"] = seqs
        for sel in sp["selector"]:
            counted = selectors.get((sp["name"], sel["name"]), {})
            sel["packetsObserved"] = str(counted.get("packets_observed", 0))
            sel["packetsDropped"] = str(counted.get("packets_dropped", 0))
            sel["selectorDiscontinuityTime"] = started
            if "filterHash" in sel:
                ipsx = sel["filterHash"].get("hashFunction", "BOB").endswith("IPSX")
                sel["filterHash"]["outputRangeMin"] = "0"
                sel["filterHash"]["outputRangeMax"] = str(2**16 - 1 if ipsx else 2**32 - 1)

    caches = stats.get("caches", {})
    for i, cache in enumerate(ipfix.get("cache", []), start=1):
        c = caches.get(cache["name"], {})
        cache["meteringProcessId"] = i
        cache["dataRecords"] = str(c.get("records", 0))
        cache["cacheDiscontinuityTime"] = started
        kind, body = cache_kind(cache)
        if kind != "immediateCache":
            active = int(c.get("active", 0))
            body["activeFlows"] = active
            if "maxFlows" in body:
                body["unusedCacheEntries"] = max(int(body["maxFlows"]) - active, 0)

    exports = stats.get("exporting_processes", {})
    for i, ep in enumerate(ipfix.get("exportingProcess", []), start=1):
        ep["exportingProcessId"] = i
        for dest in ep["destination"]:
            kind, body = destination_kind(dest)
            counted = exports.get(ep["name"], {}).get(dest["name"])
            if counted is not None:
                _destination_state(kind, body, counted, started)
    return doc


def _destination_state(kind: str, body: dict[str, Any], c: dict[str, Any], started: str) -> None:
    discarded = str(int(c.get("failures", 0)))
    if kind == "fileWriter":
        body.update(bytes=str(c.get("bytes", 0)), messages=str(c.get("messages", 0)),
                    discardedMessages=discarded, records=str(c.get("records", 0)),
                    templates=int(c.get("templates", 0)),
                    optionsTemplates=int(c.get("options_templates", 0)),
                    fileWriterDiscontinuityTime=started)
        return
    session = c.get("session", {})
    state: dict[str, Any] = {
        "ipfixVersion": int(body.get("ipfixVersion", 10)),
        "status": "active" if c.get("connected") else "inactive",
        "bytes": str(c.get("bytes", 0)), "messages": str(c.get("messages", 0)),
        "discardedMessages": discarded, "records": str(c.get("records", 0)),
        "templates": int(c.get("templates", 0)),
        "optionsTemplates": int(c.get("options_templates", 0)),
        "transportSessionDiscontinuityTime": started,
    }
    for leaf, key in (("sourceAddress", "source_address"),
                      ("destinationAddress", "destination_address")):
        if session.get(key):
            state[leaf] = session[key]
    for leaf, key in (("sourcePort", "source_port"), ("destinationPort", "destination_port")):
        if session.get(key):
            state[leaf] = int(session[key])
    if session.get("started"):
        state["transportSessionStartTime"] = session["started"]
    body["transportSession"] = state
