"""PSAMP packet reports (RFC 5476 §6.4, RFC 5477): what an immediateCache says of each packet
beside its flow fields.

- ``dataLinkFrameSection``, ``ipHeaderPacketSection``, ``ipPayloadPacketSection``: the first
  ``ieLength`` octets of the frame, of the IP packet (header on: not the link's padding after
  it) and of the IP payload (after the IPv4 header with its options, after the IPv6 fixed
  header: extension headers are payload, RFC 8200 §3), zero past what the packet has and the
  capture kept; ``sectionExportedOctets`` says how many of them are the packet's (the layout
  has one section then);
- ``dataLinkFrameSize``: the frame's length, also when the snap length cut it (the link
  header plus the IP length, then);
- ``observationTime*``: the packet's capture time (seconds, milliseconds, microseconds;
  nanoseconds from a microsecond clock);
- ``selectionSequenceId``, ``selectorId``: the selection sequence the packet came through and
  its last selector, the one whose decision made the report (``probe.config.psamp``);
- ``digestHashValue``: the hash the sequence's filterHash with digestOutput computed of the
  packet (RFC 5475 §6.2.5: a digest that identifies it, as trajectory sampling uses).

Each value is read from the capture's columns (``probe.capture.batch``); a section's column
is as wide as the widest report of it (``section_widths``), and only then decoded.
"""

from __future__ import annotations

import numpy as np

from probe.capture.batch import PacketBatch
from probe.config import model
from probe.ie import PACKET_REPORT

# section IE -> (octets column, length column)
SECTION_COLUMNS = {
    "dataLinkFrameSection": ("frame_section", "frame_section_len"),
    "ipHeaderPacketSection": ("ip_section", "ip_section_len"),
    "ipPayloadPacketSection": ("payload_section", "payload_section_len"),
}
_TIME_DIVISOR = {"observationTimeSeconds": 1_000_000, "observationTimeMilliseconds": 1000,
                 "observationTimeMicroseconds": 1}


def section_widths(layout: model.CacheLayout) -> dict[str, int]:
    """The octets of each section column a layout reports."""
    out: dict[str, int] = {}
    for f in layout.fields:
        if f.ie_name in SECTION_COLUMNS:
            column = SECTION_COLUMNS[f.ie_name][0]
            out[column] = max(out.get(column, 0), f.ie_length or 0)
    return out


def reports(layout: model.CacheLayout) -> bool:
    return any(f.ie_name in PACKET_REPORT for f in layout.fields)


def report_values(batch: PacketBatch, layout: model.CacheLayout, via: tuple[int, int],
                  digests: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each packet-report field of ``layout`` for every packet of ``batch``; ``via`` is the
    (selectionSequenceId, selectorId) the batch was selected through, ``digests`` the hash a
    filterHash with digestOutput computed of each packet."""
    n = len(batch)
    out: dict[str, np.ndarray] = {}
    section: tuple[str, int] | None = None
    for f in layout.fields:
        name = f.ie_name
        if name in SECTION_COLUMNS:
            octets, length = SECTION_COLUMNS[name]
            width = f.ie_length or 0
            col = getattr(batch, octets)[:, :width]
            if col.shape[1] < width:  # a batch decoded without it (a stand-in, a quiet link)
                col = np.pad(col, ((0, 0), (0, width - col.shape[1])))
            out[name] = col
            section = (length, width)
        elif name == "dataLinkFrameSize":
            out[name] = np.minimum(batch.frame_len, 0xFFFF).astype(np.uint16)
        elif name in _TIME_DIVISOR:
            out[name] = batch.ts_us // _TIME_DIVISOR[name]
        elif name == "observationTimeNanoseconds":
            out[name] = batch.ts_us.astype(np.uint64) * np.uint64(1000)
        elif name == "selectionSequenceId":
            out[name] = np.full(n, via[0], np.uint64)
        elif name == "selectorId":
            out[name] = np.full(n, via[1], np.uint64)
        elif name == "digestHashValue":
            out[name] = digests if digests is not None else np.zeros(n, np.uint64)
    if "sectionExportedOctets" in {f.ie_name for f in layout.fields} and section is not None:
        length, width = section
        out["sectionExportedOctets"] = np.minimum(getattr(batch, length), width).astype(
            np.uint16)
    return out
