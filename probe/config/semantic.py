"""Checks YANG cannot express: what the IANA registry knows, what the meter can fill, what each
export version can carry, and parameter values that are well typed but cannot work.

Runs on a document yangson accepted, so structure and leafrefs are known to be sound here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from probe.batching import SECTION_MAX_LENGTH
from probe.config.filters import digest_output, filter_hash_problems, filter_match_problems
from probe.config.paths import ROOT, quote
from probe.config.uris import file_path
from probe.ie import (
    BIFLOW_IES,
    CUMULATIVE_COUNTERS,
    DELTA_COUNTERS,
    ENTERPRISE_ELEMENTS,
    METERED,
    METERED_KEYS,
    PACKET_REPORT,
    PACKET_SECTIONS,
    REVERSE_IES,
    REVERSE_PEN,
    SWAPPED_KEYS,
    TUNNEL_ELEMENTS,
    V5_CARRIABLE,
    InformationElement,
    by_id,
    by_name,
    reverse_name,
)
from probe.ie.iana import ELEMENTS

CACHE_KINDS = ("immediateCache", "timeoutCache", "naturalCache", "permanentCache")
SUPPORTED_VERSIONS = (5, 9, 10)
VERSION_LABEL = {5: "NetFlow v5", 9: "NetFlow v9", 10: "IPFIX"}
VARIABLE_LENGTH = 65535  # RFC 7011 §7
# NetFlow v9 over a byte stream: RFC 3954 defines it for UDP, and its header has no length;
# nfcapd, nfacctd and goflow2 take it over UDP only, so nothing could read such a stream.
V9_OVER_TCP = ("NetFlow v9 cannot go over TCP: RFC 3954 defines it for UDP only and its header "
               "has no length, so a stream collector cannot tell where a message ends "
               "(nfcapd, nfacctd and goflow2 take v9 over UDP only)")

Problems = list[tuple[str, str]]


def p_entry(parent: str, member: str, entry: dict[str, Any]) -> str:
    return f"{parent}/{member}[name={quote(entry.get('name'))}]"


def cache_kind(cache: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for kind in CACHE_KINDS:
        if kind in cache:
            return kind, cache[kind]
    raise KeyError("cache type")  # yangson guarantees one


def destination_kind(dest: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for kind in ("udpExporter", "tcpExporter", "fileWriter", "sctpExporter"):
        if kind in dest:
            return kind, dest[kind]
    raise KeyError("destination type")


def cache_fields(cache: dict[str, Any]) -> list[dict[str, Any]]:
    return cache_kind(cache)[1].get("cacheLayout", {}).get("cacheField", [])


def resolve_ie(field: dict[str, Any]) -> tuple[InformationElement | None, str | None]:
    """The IE a cache field names (IANA's, or one of the enterprise IEs flowprobe knows), or
    what is wrong with the name/id."""
    pen = int(field.get("ieEnterpriseNumber", 0))
    known_pens = {row[0] for row in ENTERPRISE_ELEMENTS}
    if pen and pen not in known_pens | {REVERSE_PEN}:
        return None, (f"enterprise-specific Information Elements of enterprise {pen} are not "
                      f"supported (flowprobe knows enterprise {', '.join(map(str, known_pens))}"
                      f"'s tunnel IEs and RFC 5103's reverse IEs, enterprise {REVERSE_PEN})")
    if "ieName" in field:
        ie = by_name(field["ieName"])
        if ie is None:
            names = ([row[1] for row in ELEMENTS] + [row[2] for row in ENTERPRISE_ELEMENTS]
                     + sorted(REVERSE_IES))
            close = difflib.get_close_matches(field["ieName"], names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return None, f"unknown Information Element '{field['ieName']}'{hint}"
        if ie.pen != pen:
            if pen == 0:
                return None, (f"{ie.name} is an enterprise-specific Information Element: give "
                              f"ieEnterpriseNumber {ie.pen} with it")
            if pen == REVERSE_PEN and by_name(reverse_name(ie.name)) is not None:
                return None, (f"enterprise {pen} has no Information Element '{ie.name}': "
                              f"RFC 5103's reverse of {ie.name} is "
                              f"'{reverse_name(ie.name)}'")
            return None, f"enterprise {pen} has no Information Element '{ie.name}'"
        return ie, None
    ie = by_id(int(field["ieId"]), pen)
    if ie is None:
        owner = f" of enterprise {pen}" if pen else ""
        return None, f"unknown Information Element id {field['ieId']}{owner}"
    return ie, None


def _items(ipfix: dict[str, Any], member: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for entry in ipfix.get(member, []):
        yield p_entry(ROOT, member, entry), entry


def check(doc: dict[str, Any], *, replay: bool = False) -> Problems:
    """``replay``: packets come from ``flowprobe replay``'s command line, so an observation
    point needs no capture source of its own."""
    ipfix = next(iter(doc.values()))
    problems: Problems = []
    if not ipfix.get("observationPoint") and not ipfix.get("collectingProcess"):
        problems.append((ROOT, "declares nothing to run: needs an observationPoint (to meter "
                               "packets) or a collectingProcess"))
    for path, op in _items(ipfix, "observationPoint"):
        problems += _observation_point(path, op, replay)
    for path, sp in _items(ipfix, "selectionProcess"):
        problems += _selection_process(path, sp)
    for path, cache in _items(ipfix, "cache"):
        problems += _cache(path, cache)
    for path, ep in _items(ipfix, "exportingProcess"):
        problems += _exporting_process(path, ep)
    problems += _version_layouts(ipfix)
    problems += _tunnel_layouts(ipfix)
    problems += _digests(ipfix)
    for path, cp in _items(ipfix, "collectingProcess"):
        problems += _collecting_process(path, cp)
    return problems


def _observation_point(path: str, op: dict[str, Any], replay: bool) -> Problems:
    problems: Problems = []
    has_if = bool(op.get("ifName"))
    has_file = "flowprobe:offlineFile" in op
    if has_if and has_file:
        problems.append((path, "give ifName (live capture) or offlineFile (pcap file), not both"))
    elif not has_if and not has_file and not replay:
        problems.append((path, "nothing to observe: needs ifName (live capture) or offlineFile "
                               "(pcap file)"))
    if not op.get("selectionProcess"):
        problems.append((path, "feeds no selectionProcess, so every observed packet would be "
                               "dropped"))
    return problems


def _selection_process(path: str, sp: dict[str, Any]) -> Problems:
    problems: Problems = []
    if "cache" not in sp:
        problems.append((path, "feeds no cache, so selected packets would be dropped"))
    for sel in sp.get("selector", []):
        spath = p_entry(path, "selector", sel)
        if "sampCountBased" in sel and int(sel["sampCountBased"]["packetInterval"]) < 1:
            problems.append((f"{spath}/sampCountBased/packetInterval",
                             "must be at least 1, or no packet is ever selected"))
        if "sampTimeBased" in sel and int(sel["sampTimeBased"]["timeInterval"]) < 1:
            problems.append((f"{spath}/sampTimeBased/timeInterval",
                             "must be at least 1 microsecond, or no packet is ever selected"))
        if "sampRandOutOfN" in sel:
            s = sel["sampRandOutOfN"]
            if int(s["population"]) < 1:
                problems.append((f"{spath}/sampRandOutOfN/population", "must be at least 1"))
            elif not 1 <= int(s["size"]) <= int(s["population"]):
                problems.append((f"{spath}/sampRandOutOfN/size",
                                 f"{s['size']} must be between 1 and the population "
                                 f"{s['population']}"))
        if "sampUniProb" in sel and Decimal(sel["sampUniProb"]["probability"]) == 0:
            problems.append((f"{spath}/sampUniProb/probability",
                             "0 selects no packet; use a probability above 0"))
        if "filterMatch" in sel:
            problems += filter_match_problems(f"{spath}/filterMatch", sel["filterMatch"])
        if "filterHash" in sel:
            problems += filter_hash_problems(f"{spath}/filterHash", sel["filterHash"])
    return problems


def _cache(path: str, cache: dict[str, Any]) -> Problems:
    problems: Problems = []
    kind, body = cache_kind(cache)
    kpath = f"{path}/{kind}"
    if "maxFlows" in body and int(body["maxFlows"]) < 1:
        problems.append((f"{kpath}/maxFlows", "must be at least 1 (omit it for no limit)"))
    seen: dict[str, str] = {}
    keys = 0
    for field in body.get("cacheLayout", {}).get("cacheField", []):
        fpath = p_entry(f"{kpath}/cacheLayout", "cacheField", field)
        ie, problem = resolve_ie(field)
        if problem:
            problems.append((fpath, problem))
            continue
        assert ie is not None
        is_key = "isFlowKey" in field
        keys += is_key
        if ie.name not in METERED:
            problems.append((fpath, f"flowprobe's meter cannot fill {ie.name} ({ie.id})"))
        elif is_key and ie.name not in METERED_KEYS:
            problems.append((fpath, f"{ie.name} cannot be a flow key (it is a measured value)"))
        elif kind == "permanentCache" and ie.name in DELTA_COUNTERS:
            problems.append((fpath, f"a permanentCache reports cumulative counters: use "
                                    f"{ie.name.replace('Delta', 'Total')}, not {ie.name}"))
        elif kind != "permanentCache" and ie.name in CUMULATIVE_COUNTERS:
            problems.append((fpath, f"a {kind} reports each flow once with delta counters: use "
                                    f"{ie.name.replace('Total', 'Delta')}, not {ie.name}"))
        elif ie.name in PACKET_REPORT and kind != "immediateCache":
            problems.append((fpath, f"{ie.name} is part of a PSAMP packet report (RFC 5476): "
                                    f"only an immediateCache, which reports each packet, "
                                    f"carries it"))
        elif ie.name in PACKET_SECTIONS:
            problems += _section_length(fpath, field, ie.name)
        elif "ieLength" in field:
            allowed = ie.allowed_lengths()
            if int(field["ieLength"]) not in allowed:
                shown = ", ".join(map(str, allowed)) if len(allowed) < 4 else \
                    f"{allowed[0]}..{allowed[-1]}"
                problems.append((f"{fpath}/ieLength",
                                 f"{field['ieLength']} is not a valid length for {ie.name} "
                                 f"({ie.data_type}: {shown})"))
        if ie.name in seen:
            problems.append((fpath, f"{ie.name} is already in the layout as field "
                                    f"{quote(seen[ie.name])}"))
        seen.setdefault(ie.name, str(field.get("name")))
    sections = [n for n in seen if n in PACKET_SECTIONS]
    if "sectionExportedOctets" in seen and len(sections) != 1:
        problems.append((f"{kpath}/cacheLayout", f"sectionExportedOctets says how many octets "
                                                 f"of the one packet section are real; this "
                                                 f"layout has {len(sections)} sections"))
    if kind != "immediateCache" and keys == 0:
        problems.append((f"{kpath}/cacheLayout", f"a {kind} needs at least one flow key "
                                                 "(isFlowKey) to tell flows apart"))
    problems += _biflow_layout(kind, kpath, body.get("cacheLayout", {}).get("cacheField", []))
    return problems


def _biflow_layout(kind: str, kpath: str, fields: list[dict[str, Any]]) -> Problems:
    """A layout with RFC 5103 reverse IEs (or biflowDirection) makes a biflow cache: one flow
    for both directions, keyed on both ends of the conversation."""
    names = {ie.name: field for field in fields
             if (ie := resolve_ie(field)[0]) is not None}
    biflow = sorted(BIFLOW_IES & set(names))
    if not biflow:
        return []
    if kind == "immediateCache":
        return [(p_entry(f"{kpath}/cacheLayout", "cacheField", names[biflow[0]]),
                 f"{biflow[0]}: an immediateCache reports single packets, not biflows")]
    keys = {n for n, f in names.items() if "isFlowKey" in f}
    problems: Problems = []
    if "postDestinationMacAddress" in keys:
        problems.append((p_entry(f"{kpath}/cacheLayout", "cacheField",
                                 names["postDestinationMacAddress"]),
                         "postDestinationMacAddress cannot key a biflow cache (it has no "
                         "source counterpart); use destinationMacAddress"))
    for one, other in SWAPPED_KEYS:
        if (one in keys) != (other in keys):
            have, lack = (one, other) if one in keys else (other, one)
            problems.append((f"{kpath}/cacheLayout",
                             f"a biflow cache ({biflow[0]}) keys on both ends of a "
                             f"conversation: it has {have} as a flow key, so it needs {lack} "
                             "as one too"))
    return problems


def _section_length(path: str, field: dict[str, Any], name: str) -> Problems:
    """A section is ``ieLength`` octets, padded with zeros past what the packet has."""
    if "ieLength" not in field:
        return []
    length = int(field["ieLength"])
    if length == VARIABLE_LENGTH:
        return [(f"{path}/ieLength", f"{name} is sent with a fixed length (zero-padded; "
                                     f"sectionExportedOctets says how much is real): give its "
                                     f"length, 1..{SECTION_MAX_LENGTH}, not 65535 (variable)")]
    if not 1 <= length <= SECTION_MAX_LENGTH:
        return [(f"{path}/ieLength", f"{length} is not a section length flowprobe can report "
                                     f"(1..{SECTION_MAX_LENGTH} octets)")]
    return []


def _exporting_process(path: str, ep: dict[str, Any]) -> Problems:
    problems: Problems = []
    v5 = False
    for dest in ep.get("destination", []):
        dpath = p_entry(path, "destination", dest)
        kind, body = destination_kind(dest)
        version = int(body.get("ipfixVersion", 10))
        problems += _tls(f"{dpath}/{kind}", body)
        if kind == "tcpExporter" and version == 9:
            problems.append((f"{dpath}/tcpExporter/ipfixVersion",
                             f"{V9_OVER_TCP}; use ipfixVersion 10 (IPFIX frames TCP by its "
                             "length field, RFC 7011 §10.4) or a udpExporter"))
        if kind == "fileWriter":
            problems += _file_writer(f"{dpath}/fileWriter", body, version)
        elif version not in SUPPORTED_VERSIONS:
            problems.append((f"{dpath}/{kind}/ipfixVersion",
                             f"version {version} is not supported (5 = NetFlow v5, "
                             "9 = NetFlow v9, 10 = IPFIX)"))
        v5 |= version == 5
    if v5 and ep.get("options"):
        problems.append((f"{path}/options", "NetFlow v5 cannot carry options records; "
                                            "remove the options or use version 9 or 10"))
    return problems


def _file_writer(path: str, body: dict[str, Any], version: int) -> Problems:
    problems: Problems = []
    if version != 10:
        problems.append((f"{path}/ipfixVersion", f"an IPFIX File (RFC 5655) holds IPFIX "
                                                 f"Messages: ipfixVersion must be 10, not "
                                                 f"{version}"))
    _, problem = file_path(body["file"])
    if problem:
        problems.append((f"{path}/file", problem))
    return problems


def _tls(path: str, body: dict[str, Any]) -> Problems:
    """RFC 7011 §11.3: TLS authenticates both ends, so each needs its certificate."""
    tls = body.get("transportLayerSecurity")
    if tls is None or "flowprobe:certificateFile" in tls:
        return []
    return [(f"{path}/transportLayerSecurity", "needs flowprobe:certificateFile (and "
                                               "privateKeyFile unless the key is in it): TLS "
                                               "for IPFIX authenticates both ends (RFC 7011 "
                                               "§11.3)")]


def _collecting_process(path: str, cp: dict[str, Any]) -> Problems:
    if not (cp.get("udpCollector") or cp.get("tcpCollector") or cp.get("fileReader")):
        return [(path, "needs a udpCollector, a tcpCollector or a fileReader")]
    problems: Problems = []
    for c in cp.get("tcpCollector", []):
        problems += _tls(p_entry(path, "tcpCollector", c), c)
    for reader in cp.get("fileReader", []):
        _, problem = file_path(reader["file"])
        if problem:
            problems.append((f"{p_entry(path, 'fileReader', reader)}/file", problem))
    return problems


def _digests(ipfix: dict[str, Any]) -> Problems:
    """RFC 6728 digestOutput: the filterHash's value goes into the packet reports of its
    selection process's cache as digestHashValue, so the two come together."""
    problems: Problems = []
    layouts = {c["name"]: {resolve_ie(f)[0].name for f in cache_fields(c)  # type: ignore[union-attr]
                           if resolve_ie(f)[0] is not None}
               for c in ipfix.get("cache", [])}
    fed: dict[str, list[str]] = {}
    for path, sp in _items(ipfix, "selectionProcess"):
        digests = [sel for sel in sp.get("selector", [])
                   if "filterHash" in sel and digest_output(sel["filterHash"])]
        cache = sp.get("cache")
        if cache is not None:
            fed.setdefault(cache, []).append(sp["name"] if not digests else "")
        if len(digests) > 1:
            problems.append((path, "more than one filterHash outputs its digest; a packet "
                                   "report has one digestHashValue"))
        elif digests and "digestHashValue" not in layouts.get(cache or "", set()):
            dpath = f"{p_entry(path, 'selector', digests[0])}/filterHash/digestOutput"
            problems.append((dpath, f"the digest goes into the packet reports' "
                                    f"digestHashValue, and cache {quote(cache)} has none in its "
                                    f"layout"))
    for path, cache in _items(ipfix, "cache"):
        lacking = [n for n in fed.get(cache["name"], []) if n]
        if "digestHashValue" in layouts[cache["name"]] and lacking:
            problems.append((path, f"digestHashValue is the hash of a filterHash with "
                                   f"digestOutput true, and selectionProcess {quote(lacking[0])} "
                                   f"feeding this cache has none"))
    return problems


def _version_layouts(ipfix: dict[str, Any]) -> Problems:
    """A NetFlow v5 record has fixed fields: a cache feeding a v5 destination must fit. NetFlow
    v9 has no enterprise numbers: a cache feeding a v9 destination cannot have their IEs, nor
    a PSAMP packet report's, which is IPFIX (RFC 5476)."""
    first: dict[tuple[str, int], str] = {}  # (exporting process, version) -> a destination
    for ep in ipfix.get("exportingProcess", []):
        for dest in ep.get("destination", []):
            version = int(destination_kind(dest)[1].get("ipfixVersion", 10))
            first.setdefault((ep["name"], version), dest["name"])
    problems: Problems = []
    for path, cache in _items(ipfix, "cache"):
        kind, _ = cache_kind(cache)
        for version, why in ((5, "cannot be carried by NetFlow v5"),
                             (9, "is enterprise-specific, which NetFlow v9 cannot carry")):
            feeds = [n for n in cache.get("exportingProcess", []) if (n, version) in first]
            if not feeds:
                continue
            for field in cache_fields(cache):
                ie, _ = resolve_ie(field)
                # a biflow goes to v5 and v9 as two records, one per direction
                if ie is None or ie.name in BIFLOW_IES:
                    continue
                because = why
                if version == 9 and ie.name in PACKET_REPORT:
                    because = ("is part of a PSAMP packet report, which is IPFIX (RFC 5476); "
                               "NetFlow v9 collectors do not know it")
                elif ie.name in V5_CARRIABLE if version == 5 else ie.pen == 0:
                    continue
                fpath = p_entry(f"{path}/{kind}/cacheLayout", "cacheField", field)
                problems.append((fpath, f"{ie.name} {because} (exportingProcess "
                                        f"{quote(feeds[0])} destination "
                                        f"{quote(first[(feeds[0], version)])} is version "
                                        f"{version})"))
    return problems


# Tunnel IEs and the flowprobe:tunnels switches that can fill them (None: any tunnel with an
# id, the rest: any tunnel at all).
_TUNNEL_NEEDS: dict[str, tuple[str, ...]] = {
    "greKey": ("gre",), "layer2SegmentId": ("vxlan", "gre"),
    "UPSTREAM_TUNNEL_ID": ("gre", "vxlan", "geneve", "gtpU"),
}


def _tunnel_layouts(ipfix: dict[str, Any]) -> Problems:
    """Tunnel IEs are filled only from tunnels an observation point feeding the cache opens;
    without one they would be 0 in every record."""
    sp_cache = {sp["name"]: sp.get("cache") for sp in ipfix.get("selectionProcess", [])}
    opened: dict[str, set[str]] = {}  # cache -> tunnels opened by the points feeding it
    for op in ipfix.get("observationPoint", []):
        switches = {k for k, v in op.get("flowprobe:tunnels", {}).items() if v}
        for sp in op.get("selectionProcess", []):
            if sp_cache.get(sp) is not None:
                opened.setdefault(sp_cache[sp], set()).update(switches)
    problems: Problems = []
    for path, cache in _items(ipfix, "cache"):
        kind, _ = cache_kind(cache)
        have = opened.get(cache["name"], set())
        for field in cache_fields(cache):
            ie, _ = resolve_ie(field)
            if ie is None or ie.name not in TUNNEL_ELEMENTS:
                continue
            needs = _TUNNEL_NEEDS.get(ie.name)
            if (have & set(needs)) if needs else have:
                continue
            which = " or ".join(f"flowprobe:tunnels/{n}" for n in needs) if needs else \
                "flowprobe:tunnels"
            fpath = p_entry(f"{path}/{kind}/cacheLayout", "cacheField", field)
            problems.append((fpath, f"{ie.name} is filled only from opened tunnels, and no "
                                    f"observationPoint feeding this cache opens one ({which})"))
    return problems
