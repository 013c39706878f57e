"""A ``Config`` written back out as a config file, in goflowd form (``--print-config``).

The inverse of ``probe.config.build``: loading what ``goflowd_form`` returns gives back an
equal ``Config`` (``tests/config/test_dump.py`` checks it for every sample config and for the
command-line flags), so a one-liner such as ``flowprobe run -i eth0 --export udp://H:P`` can
become a file that runs exactly the same probe. Values the loader fills in by default are
written out where an operator would look for them (timeouts, cache size, version, port), and
left out where they are RFC 6728's unremarkable defaults.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from probe.config import model
from probe.ie import by_name

_IPFIX = "ietf-ipfix-psamp:"


def goflowd_form(config: model.Config) -> dict[str, Any]:
    """The goflowd-form document (the inside of the ``ipfix`` container) of ``config``."""
    doc: dict[str, Any] = {}
    if config.observation_points:
        doc["observationPoint"] = [_observation_point(op) for op in config.observation_points]
    if config.selection_processes:
        doc["selectionProcess"] = [_selection_process(sp) for sp in config.selection_processes]
    if config.caches:
        doc["cache"] = [_cache(c) for c in config.caches]
    if config.exporting_processes:
        doc["exportingProcess"] = [_exporting_process(e) for e in config.exporting_processes]
    if config.collecting_processes:
        doc["collectingProcess"] = [_collecting_process(c)
                                    for c in config.collecting_processes]
    return doc


def _observation_point(op: model.ObservationPoint) -> dict[str, Any]:
    out: dict[str, Any] = {"name": op.name, "observationDomainId": op.observation_domain_id}
    if op.if_names:
        out["ifName"] = list(op.if_names)
    out["direction"] = op.direction
    if op.selection_processes:
        out["selectionProcess"] = [sp.name for sp in op.selection_processes]
    if op.offline_file is not None:
        out["offlineFile"] = op.offline_file
    if not op.promiscuous:
        out["promiscuous"] = False
    if op.snap_length != 65535:
        out["snapLength"] = op.snap_length
    if op.bpf_filter is not None:
        out["bpfFilter"] = op.bpf_filter
    if op.max_observing_packets:
        out["maxObservingPackets"] = op.max_observing_packets
    if op.tunnels:
        out["tunnels"] = {t: True for t in op.tunnels}
    return out


def _selector(sel: model.Selector) -> dict[str, Any]:
    out: dict[str, Any] = {"name": sel.name}
    if isinstance(sel, model.SelectAll):
        out["selectAll"] = [None]
    elif isinstance(sel, model.SampCountBased):
        out["sampCountBased"] = {"packetInterval": sel.packet_interval,
                                 "packetSpace": sel.packet_space}
    elif isinstance(sel, model.SampTimeBased):
        out["sampTimeBased"] = {"timeInterval": sel.time_interval, "timeSpace": sel.time_space}
    elif isinstance(sel, model.SampRandOutOfN):
        out["sampRandOutOfN"] = _seeded({"size": sel.size, "population": sel.population},
                                        sel.seed)
    elif isinstance(sel, model.SampUniProb):
        out["sampUniProb"] = _seeded({"probability": sel.probability}, sel.seed)
    elif isinstance(sel, model.FilterMatch):
        out["filterMatch"] = {"ieName": sel.ie_name, "value": _match_text(sel)}
    else:
        body: dict[str, Any] = {"hashFunction": sel.hash_function}
        if sel.hash_function != "IPSX":  # IPSX takes no initializer (RFC 5475 A.1)
            body["initializerValue"] = sel.initializer_value
        body["ipPayloadOffset"] = sel.ip_payload_offset
        body["ipPayloadSize"] = sel.ip_payload_size
        body["selectedRange"] = [{"name": r.name, "min": r.min, "max": r.max}
                                 for r in sel.ranges]
        out["filterHash"] = body
    return out


def _seeded(body: dict[str, Any], seed: int | None) -> dict[str, Any]:
    return body if seed is None else {**body, "seed": seed}


def _match_text(sel: model.FilterMatch) -> str:
    """filterMatch's value as the YANG string the loader parses back into ``sel.value``."""
    kind = getattr(by_name(sel.ie_name), "data_type", "")
    if isinstance(sel.value, bytes):
        return str(ipaddress.IPv6Address(sel.value))
    if kind == "ipv4Address":
        return str(ipaddress.IPv4Address(sel.value))
    if kind == "macAddress":
        return ":".join(f"{sel.value >> s & 0xFF:02x}" for s in range(40, -8, -8))
    return str(sel.value)


def _selection_process(sp: model.SelectionProcess) -> dict[str, Any]:
    out: dict[str, Any] = {"name": sp.name, "selector": [_selector(s) for s in sp.selectors]}
    if sp.cache is not None:
        out["cache"] = sp.cache.name
    return out


def _field(f: model.CacheField) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name, "ieName": f.ie_name}
    if f.ie_length is not None:
        out["ieLength"] = f.ie_length
    if f.enterprise_number:
        out["ieEnterpriseNumber"] = f.enterprise_number
    if f.is_flow_key:
        out["isFlowKey"] = [None]
    return out


def _cache(c: model.Cache) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if c.kind != "immediateCache":
        if c.max_flows is not None:
            body["maxFlows"] = c.max_flows
        if c.kind in ("timeoutCache", "naturalCache"):
            body["activeTimeout"] = c.active_timeout
            body["idleTimeout"] = c.idle_timeout
        if c.kind == "permanentCache" and c.export_interval is not None:
            body["exportInterval"] = c.export_interval
    body["cacheLayout"] = {"cacheField": [_field(f) for f in c.layout.fields]}
    out: dict[str, Any] = {"name": c.name, c.kind: body}
    if c.exporting_processes:
        out["exportingProcess"] = [e.name for e in c.exporting_processes]
    return out


def _tls(t: model.Tls) -> dict[str, Any]:
    body: dict[str, Any] = {"certificateFile": t.certificate_file}
    optional = {"privateKeyFile": t.private_key_file, "trustedCaFile": t.trusted_ca_file}
    body |= {k: v for k, v in optional.items() if v is not None}
    names = {"localCertificationAuthorityDN": t.local_ca_dns,
             "localSubjectDN": t.local_subject_dns, "localSubjectFQDN": t.local_subject_fqdns,
             "remoteCertificationAuthorityDN": t.remote_ca_dns,
             "remoteSubjectDN": t.remote_subject_dns,
             "remoteSubjectFQDN": t.remote_subject_fqdns}
    return body | {k: list(v) for k, v in names.items() if v}


def _destination(d: model.Destination) -> dict[str, Any]:
    if d.transport == "file":
        return {"name": d.name, "fileWriter": {"ipfixVersion": d.ipfix_version,
                                               "file": d.file_path,
                                               "maxMessageSize": d.max_message_size}}
    body: dict[str, Any] = {"ipfixVersion": d.ipfix_version,
                            "destinationIPAddress": d.destination_address,
                            "destinationPort": d.destination_port}
    optional = {"sourceIPAddress": d.source_address, "sendBufferSize": d.send_buffer_size,
                "rateLimit": d.rate_limit}
    if d.transport == "udp":
        optional |= {"maxPacketSize": d.max_packet_size,
                     "templateRefreshTimeout": d.template_refresh_timeout,
                     "optionsTemplateRefreshTimeout": d.options_template_refresh_timeout,
                     "templateRefreshPacket": d.template_refresh_packet,
                     "optionsTemplateRefreshPacket": d.options_template_refresh_packet}
    body |= {k: v for k, v in optional.items() if v is not None}
    if d.tls is not None:
        body["transportLayerSecurity"] = _tls(d.tls)
    return {"name": d.name, f"{d.transport}Exporter": body}


def _exporting_process(ep: model.ExportingProcess) -> dict[str, Any]:
    out: dict[str, Any] = {"name": ep.name}
    if ep.export_mode != "parallel":
        out["exportMode"] = _IPFIX + ep.export_mode
    out["destination"] = [_destination(d) for d in ep.destinations]
    if ep.options:
        out["options"] = [{"name": o.name, "optionsType": _IPFIX + o.options_type,
                           "optionsTimeout": o.options_timeout_ms} for o in ep.options]
    return out


def _collecting_process(cp: model.CollectingProcess) -> dict[str, Any]:
    out: dict[str, Any] = {"name": cp.name}
    for transport in ("udp", "tcp"):
        endpoints = [e for e in cp.endpoints if e.transport == transport]
        if endpoints:
            out[f"{transport}Collector"] = [
                {"name": e.name, **({"localIPAddress": list(e.local_addresses)}
                                    if e.local_addresses else {}), "localPort": e.local_port,
                 **({"transportLayerSecurity": _tls(e.tls)} if e.tls else {})}
                for e in endpoints]
    if cp.files:  # the model keeps a fileReader's file, not its name
        out["fileReader"] = [{"name": f"File {i}", "file": path}
                             for i, path in enumerate(cp.files, 1)]
    if cp.exporting_processes:
        out["exportingProcess"] = [e.name for e in cp.exporting_processes]
    return out
