"""Turn a validated RFC 7951 document into the frozen model, resolving every leafref.

Leafrefs become object references in dependency order (exporting processes, then caches, then
selection processes, then observation points), so the runtime follows references instead of
looking names up. Unconfigured values get the defaults RFC 6728 leaves to the device.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from probe.batching import SECTION_DEFAULT_LENGTH
from probe.config.defaults import DEFAULT_ACTIVE_TIMEOUT, DEFAULT_IDLE_TIMEOUT
from probe.config.filters import build_filter_hash, build_filter_match
from probe.config.model import (
    TUNNELS,
    Cache,
    CacheField,
    CacheLayout,
    CollectingProcess,
    CollectorEndpoint,
    Config,
    Destination,
    ExportingProcess,
    ObservationPoint,
    Options,
    SampCountBased,
    SampRandOutOfN,
    SampTimeBased,
    SampUniProb,
    SelectAll,
    SelectionProcess,
    Selector,
    Tls,
)
from probe.config.semantic import cache_kind, destination_kind, resolve_ie
from probe.config.uris import file_path
from probe.ie import PACKET_SECTIONS

IPFIX_PORT = 4739
IPFIX_TLS_PORT = 4740  # RFC 6728: the default port when TLS or DTLS is on
# RFC 6728 leaves a permanentCache's export interval to the device when not configured.
DEFAULT_EXPORT_INTERVAL = 60
FP = "flowprobe:"


def _opt_int(obj: dict[str, Any], member: str) -> int | None:
    return int(obj[member]) if member in obj else None


def _identity(value: str) -> str:
    return value.rpartition(":")[2]


def build(doc: dict[str, Any], source: str) -> Config:
    ipfix = next(iter(doc.values()))
    eps = {e["name"]: _exporting_process(e) for e in ipfix.get("exportingProcess", [])}
    caches = {c["name"]: _cache(c, eps) for c in ipfix.get("cache", [])}
    sps = {s["name"]: _selection_process(s, caches) for s in ipfix.get("selectionProcess", [])}
    ops = tuple(_observation_point(o, sps) for o in ipfix.get("observationPoint", []))
    cps = tuple(_collecting_process(c, eps) for c in ipfix.get("collectingProcess", []))
    return Config(source=source, observation_points=ops, selection_processes=tuple(sps.values()),
                  caches=tuple(caches.values()), exporting_processes=tuple(eps.values()),
                  collecting_processes=cps)


def _destination(dest: dict[str, Any]) -> Destination:
    kind, body = destination_kind(dest)
    if kind == "fileWriter":
        return Destination(name=dest["name"], transport="file", destination_port=0,
                           file_path=file_path(body["file"])[0],
                           max_message_size=int(body.get(FP + "maxMessageSize", 65535)))
    udp = kind == "udpExporter"
    tls = _tls(body.get("transportLayerSecurity"))
    return Destination(
        name=dest["name"],
        transport="udp" if udp else "tcp",
        ipfix_version=int(body.get("ipfixVersion", 10)),  # type: ignore[arg-type]
        destination_address=body["destinationIPAddress"],
        destination_port=int(body.get("destinationPort", IPFIX_TLS_PORT if tls else IPFIX_PORT)),
        source_address=body.get("sourceIPAddress"),
        tls=tls,
        send_buffer_size=_opt_int(body, "sendBufferSize"),
        rate_limit=_opt_int(body, "rateLimit"),
        max_packet_size=_opt_int(body, "maxPacketSize"),
        template_refresh_timeout=int(body.get("templateRefreshTimeout", 600)),
        options_template_refresh_timeout=int(body.get("optionsTemplateRefreshTimeout", 600)),
        template_refresh_packet=_opt_int(body, "templateRefreshPacket"),
        options_template_refresh_packet=_opt_int(body, "optionsTemplateRefreshPacket"),
    )


def _tls(body: dict[str, Any] | None) -> Tls | None:
    if body is None:
        return None
    return Tls(certificate_file=body[FP + "certificateFile"],
               private_key_file=body.get(FP + "privateKeyFile"),
               trusted_ca_file=body.get(FP + "trustedCaFile"),
               local_ca_dns=tuple(body.get("localCertificationAuthorityDN", ())),
               local_subject_dns=tuple(body.get("localSubjectDN", ())),
               local_subject_fqdns=tuple(body.get("localSubjectFQDN", ())),
               remote_ca_dns=tuple(body.get("remoteCertificationAuthorityDN", ())),
               remote_subject_dns=tuple(body.get("remoteSubjectDN", ())),
               remote_subject_fqdns=tuple(body.get("remoteSubjectFQDN", ())))


def _exporting_process(ep: dict[str, Any]) -> ExportingProcess:
    options = tuple(
        Options(name=o["name"], options_type=_identity(o["optionsType"]),  # type: ignore[arg-type]
                options_timeout_ms=int(o.get("optionsTimeout", 0)))
        for o in ep.get("options", []))
    return ExportingProcess(
        name=ep["name"],
        export_mode=_identity(ep.get("exportMode", "parallel")),  # type: ignore[arg-type]
        destinations=tuple(_destination(d) for d in ep["destination"]),
        options=options,
    )


def _field(field: dict[str, Any]) -> CacheField:
    ie, _ = resolve_ie(field)
    assert ie is not None  # semantic checks passed
    length = _opt_int(field, "ieLength")
    if length is None and ie.name in PACKET_SECTIONS:
        length = SECTION_DEFAULT_LENGTH  # RFC 6728: the device sets it
    return CacheField(name=field["name"], ie_id=ie.id, ie_name=ie.name,
                      ie_length=length,
                      enterprise_number=ie.pen,
                      is_flow_key="isFlowKey" in field)


def _cache(cache: dict[str, Any], eps: dict[str, ExportingProcess]) -> Cache:
    kind, body = cache_kind(cache)
    timed = kind in ("timeoutCache", "naturalCache")
    return Cache(
        name=cache["name"],
        kind=kind,  # type: ignore[arg-type]
        max_flows=_opt_int(body, "maxFlows"),
        active_timeout=int(body.get("activeTimeout", DEFAULT_ACTIVE_TIMEOUT)) if timed else 0,
        idle_timeout=int(body.get("idleTimeout", DEFAULT_IDLE_TIMEOUT)) if timed else 0,
        export_interval=(int(body.get("exportInterval", DEFAULT_EXPORT_INTERVAL))
                         if kind == "permanentCache" else None),
        layout=CacheLayout(fields=tuple(_field(f) for f in body["cacheLayout"]["cacheField"])),
        exporting_processes=tuple(eps[n] for n in cache.get("exportingProcess", [])),
    )


def _selector(sel: dict[str, Any]) -> Selector:
    name = sel["name"]
    if "sampCountBased" in sel:
        p = sel["sampCountBased"]
        return SampCountBased(name=name, packet_interval=int(p["packetInterval"]),
                              packet_space=int(p["packetSpace"]))
    if "sampTimeBased" in sel:
        p = sel["sampTimeBased"]
        return SampTimeBased(name=name, time_interval=int(p["timeInterval"]),
                             time_space=int(p["timeSpace"]))
    if "sampRandOutOfN" in sel:
        p = sel["sampRandOutOfN"]
        return SampRandOutOfN(name=name, size=int(p["size"]), population=int(p["population"]),
                              seed=_opt_int(p, FP + "seed"))
    if "sampUniProb" in sel:
        p = sel["sampUniProb"]
        return SampUniProb(name=name, probability=float(Decimal(p["probability"])),
                           seed=_opt_int(p, FP + "seed"))
    if "filterMatch" in sel:
        return build_filter_match(name, sel["filterMatch"])
    if "filterHash" in sel:
        return build_filter_hash(name, sel["filterHash"])
    return SelectAll(name=name)


def _selection_process(sp: dict[str, Any], caches: dict[str, Cache]) -> SelectionProcess:
    return SelectionProcess(name=sp["name"], selectors=tuple(_selector(s) for s in sp["selector"]),
                            cache=caches[sp["cache"]] if "cache" in sp else None)


def _observation_point(op: dict[str, Any], sps: dict[str, SelectionProcess]) -> ObservationPoint:
    return ObservationPoint(
        name=op["name"],
        observation_domain_id=int(op["observationDomainId"]),
        if_names=tuple(op.get("ifName", ())),
        direction=op.get("direction", "both"),
        selection_processes=tuple(sps[n] for n in op.get("selectionProcess", [])),
        offline_file=op.get(FP + "offlineFile"),
        promiscuous=bool(op.get(FP + "promiscuous", True)),
        snap_length=int(op.get(FP + "snapLength", 65535)),
        bpf_filter=op.get(FP + "bpfFilter"),
        max_observing_packets=int(op.get(FP + "maxObservingPackets", 0)),
        tunnels=tuple(t for t in TUNNELS if op.get(FP + "tunnels", {}).get(t, False)),
    )


def _collecting_process(cp: dict[str, Any], eps: dict[str, ExportingProcess]) -> CollectingProcess:
    endpoints = tuple(
        CollectorEndpoint(name=c["name"], transport=transport,  # type: ignore[arg-type]
                          local_addresses=tuple(c.get("localIPAddress", ())),
                          local_port=int(c.get("localPort", IPFIX_TLS_PORT if tls
                                                else IPFIX_PORT)),
                          tls=tls)
        for transport in ("udp", "tcp") for c in cp.get(f"{transport}Collector", [])
        for tls in (_tls(c.get("transportLayerSecurity")),))
    files = tuple(file_path(r["file"])[0] for r in cp.get("fileReader", []))
    return CollectingProcess(name=cp["name"], endpoints=endpoints, files=files,
                             exporting_processes=tuple(eps[n] for n in
                                                       cp.get("exportingProcess", [])))
