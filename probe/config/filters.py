"""What YANG cannot say about the filtering selectors, filterMatch and filterHash, and the
typed values the runtime reads from them.

filterMatch (RFC 5475 §6.1) compares one packet property with a value: the IE must be one the
meter reads from every packet (``probe.ie.METERED_KEYS``), and the value, a YANG string, must
be a value of that IE's type: a number (decimal or 0x-hex) within its width, an IPv4 or IPv6
address, or a MAC address (``00:11:22:33:44:55``).

filterHash (RFC 5475 §6.2): the initializer is a 32-bit value for BOB and CRC and IPSX takes
none (RFC 5475 A.1 lists no input parameter); the hashed payload octets must lie within what
the capture keeps for it; the selected ranges must lie within the function's output range and
must not overlap (RFC 5475 §7.2: "a list of non-overlapping intervals"). digestOutput puts the
hash into the packet reports as digestHashValue (``probe.config.semantic`` pairs the two).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from probe.batching import PAYLOAD_HEAD
from probe.config.model import HASH_OUTPUT_MAX, FilterHash, FilterMatch, HashRange
from probe.config.paths import quote
from probe.ie import METERED_KEYS, InformationElement, by_id, by_name

Problems = list[tuple[str, str]]
_UNSIGNED_BITS = {"unsigned8": 8, "unsigned16": 16, "unsigned32": 32, "unsigned64": 64}
IPSX_PAYLOAD = (0, 8)  # IPSX reads payload bits 32..63: the first 8 octets, fixed
DEFAULT_INITIALIZER = 0  # RFC 6728 leaves it to the device; fixed so alike probes agree


def match_ie(body: dict[str, Any]) -> tuple[InformationElement | None, str | None]:
    if int(body.get("ieEnterpriseNumber", 0)) != 0:
        return None, "enterprise-specific Information Elements cannot be matched"
    ie = by_name(body["ieName"]) if "ieName" in body else by_id(int(body["ieId"]))
    if ie is None:
        given = body.get("ieName", body.get("ieId"))
        return None, f"unknown Information Element {quote(given)}"
    if ie.name not in METERED_KEYS:
        return None, (f"{ie.name} is not a packet property flowprobe reads; match one of "
                      f"{', '.join(sorted(METERED_KEYS))}")
    return ie, None


def match_value(ie: InformationElement, text: str) -> tuple[int | bytes | None, str | None]:
    """The value as the runtime compares it (addresses as numbers, IPv6 as 16 octets)."""
    kind = ie.data_type
    try:
        if kind == "ipv4Address":
            return int(ipaddress.IPv4Address(text.strip())), None
        if kind == "ipv6Address":
            return ipaddress.IPv6Address(text.strip()).packed, None
        if kind == "macAddress":
            octets = text.strip().replace("-", ":").split(":")
            if len(octets) != 6 or not all(len(o) == 2 for o in octets):
                raise ValueError(text)
            return int("".join(octets), 16), None
        value = int(text.strip(), 0)
    except ValueError:
        return None, f"{quote(text)} is not a value of {ie.name} ({kind})"
    bits = _UNSIGNED_BITS.get(kind)
    if bits is None:
        return None, f"{ie.name} ({kind}) cannot be matched"
    if not 0 <= value < 1 << bits:
        return None, f"{value} is out of range for {ie.name} ({kind})"
    return value, None


def filter_match_problems(path: str, body: dict[str, Any]) -> Problems:
    ie, problem = match_ie(body)
    if problem:
        return [(path, problem)]
    assert ie is not None
    _, problem = match_value(ie, body["value"])
    return [(f"{path}/value", problem)] if problem else []


def hash_function(body: dict[str, Any]) -> str:
    return str(body.get("hashFunction", "BOB")).rpartition(":")[2]


def _ranges(body: dict[str, Any], top: int) -> list[tuple[str, int, int]]:
    """(name, min, max) of each selectedRange; a missing end is the output range's end."""
    return [(str(r["name"]), int(r.get("min", 0)), int(r.get("max", top)))
            for r in body.get("selectedRange", [])]


def filter_hash_problems(path: str, body: dict[str, Any]) -> Problems:
    problems: Problems = []
    function = hash_function(body)
    top = HASH_OUTPUT_MAX[function]
    offset = int(body.get("ipPayloadOffset", 0))
    size = int(body.get("ipPayloadSize", 8))
    if function == "IPSX":
        if "initializerValue" in body:
            problems.append((f"{path}/initializerValue", "IPSX takes no initializer value "
                                                          "(RFC 5475 A.1); remove it"))
        if (offset, size) != IPSX_PAYLOAD:
            problems.append((f"{path}/ipPayloadOffset", "IPSX always hashes IP payload octets "
                                                         "0..7 (RFC 5475 A.1): leave "
                                                         "ipPayloadOffset 0 and ipPayloadSize 8"))
    elif int(body.get("initializerValue", DEFAULT_INITIALIZER)) > 0xFFFFFFFF:
        problems.append((f"{path}/initializerValue",
                         f"{function} takes a 32-bit initializer (0..4294967295)"))
    if offset + size > PAYLOAD_HEAD:
        problems.append((f"{path}/ipPayloadSize",
                         f"octets {offset}..{offset + size - 1} of the IP payload are out of "
                         f"reach: flowprobe hashes at most the first {PAYLOAD_HEAD} "
                         "(ipPayloadOffset + ipPayloadSize <= 64)"))
    seen: list[tuple[str, int, int]] = []
    for name, low, high in _ranges(body, top):
        rpath = f"{path}/selectedRange[name={quote(name)}]"
        if high > top:
            problems.append((f"{rpath}/max", f"{high} is above the largest {function} value "
                                             f"({top})"))
        elif low > high:
            problems.append((rpath, f"min {low} is above max {high}"))
        else:
            clash = [other for other, lo, hi in seen if lo <= high and low <= hi]
            if clash:
                problems.append((rpath, f"overlaps selectedRange {quote(clash[0])}; "
                                        "ranges must not overlap"))
            seen.append((name, low, high))
    return problems


def digest_output(body: dict[str, Any]) -> bool:
    return str(body.get("digestOutput", "false")).lower() == "true"


def build_filter_match(name: str, body: dict[str, Any]) -> FilterMatch:
    ie, _ = match_ie(body)
    assert ie is not None  # checked
    value, _ = match_value(ie, body["value"])
    assert value is not None
    return FilterMatch(name=name, ie_id=ie.id, ie_name=ie.name, value=value)


def build_filter_hash(name: str, body: dict[str, Any]) -> FilterHash:
    function = hash_function(body)
    return FilterHash(
        name=name,
        hash_function=function,  # type: ignore[arg-type]
        initializer_value=int(body.get("initializerValue", DEFAULT_INITIALIZER)),
        ip_payload_offset=int(body.get("ipPayloadOffset", 0)),
        ip_payload_size=int(body.get("ipPayloadSize", 8)),
        digest_output=digest_output(body),
        ranges=tuple(HashRange(name=n, min=lo, max=hi)
                     for n, lo, hi in _ranges(body, HASH_OUTPUT_MAX[function])),
    )
