"""The raw packet headers of sFlow flow samples, kept beside their flows for what reads bytes.

An sFlow agent sends each sampled packet's first octets. The collector decodes them with the
probe's own capture decoder (``decode_headers``: one ``decode_batch`` call per header
protocol, each header's row index passed as its timestamp so the rows come back in place).
goflow2's mapping file can also copy bits of a sampled packet into a flow field (its
``sflow`` section: ``length`` bits at ``offset`` bits from the start of a layer), so each flow
batch keeps ``SampledHeaders``: where each row's header lies in the flush's datagrams and
where the decoder found its IP and upper-layer headers (``Layers``). A format reads any bits
of any layer from that without decoding again; ``inside`` decodes once more with tunnels
opened, for the layers of the packet inside one (goflow2's ``encap: true``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from probe.capture import COLUMNS, DecodeStats, decode_batch

LATER_FRAGMENT = 2  # the capture decoder's ``fragment`` value of a non-first fragment
LAYER_COLUMNS = ("ip_version", "proto", "fragment", "l3_offset", "l4_offset")


def decode_headers(data: bytes, start: np.ndarray, length: np.ndarray, link: np.ndarray,
                   columns: Sequence[str], stats: DecodeStats,
                   tunnels: frozenset[str] = frozenset()) -> tuple[np.ndarray, dict]:
    """Decode the headers at ``start``/``length`` in ``data`` as their ``link`` types say
    (rows with no header have length 0) and return which rows decoded to IP and the
    ``columns`` asked for, aligned with the rows (zeros where a row did not decode)."""
    n = len(start)
    out = {k: np.zeros((n, *COLUMNS[k][1]), COLUMNS[k][0]) for k in columns if k != "ts_us"}
    ok = np.zeros(n, dtype=bool)
    has = length > 0
    for kind in np.unique(link[has]).tolist():
        rows = np.flatnonzero(has & (link == kind))
        meta = np.zeros((len(rows), 4), dtype=np.uint32)
        meta[:, 1] = rows  # as the microseconds: ts_us names the row
        meta[:, 2] = start[rows]
        meta[:, 3] = length[rows]
        b = decode_batch(data, meta, int(kind), stats, ("ts_us", *columns), tunnels)
        at = b.ts_us.astype(np.int64)
        for k, col in out.items():
            col[at] = getattr(b, k)
        ok[at] = True
    return ok, out


@dataclass(slots=True)
class Layers:
    """Per row: where the IP header (``l3``) and the upper-layer header (``l4``) start, in
    octets from the header's first, -1 where there is none (not IP; ``l4`` also for a later
    fragment, which carries no upper-layer header); the IP version and upper-layer protocol."""

    l3: np.ndarray  # int64
    l4: np.ndarray  # int64
    version: np.ndarray  # uint8, 0 where not IP
    proto: np.ndarray  # uint8

    @classmethod
    def of(cls, ok: np.ndarray, cols: dict[str, np.ndarray]) -> Layers:
        l3 = np.where(ok, cols["l3_offset"].astype(np.int64), -1)
        upper = ok & (cols["fragment"] != LATER_FRAGMENT)
        l4 = np.where(upper, cols["l4_offset"].astype(np.int64), -1)
        return cls(l3, l4, np.where(ok, cols["ip_version"], 0).astype(np.uint8),
                   cols["proto"].astype(np.uint8))

    def take(self, idx: np.ndarray) -> Layers:
        return Layers(self.l3[idx], self.l4[idx], self.version[idx], self.proto[idx])


@dataclass(slots=True)
class SampledHeaders:
    """The sampled header of each row of a flow batch: in ``data`` (the datagrams of one
    flush, joined) from ``start`` for ``length`` octets (0: the sample had no header record),
    decoded as libpcap link type ``link``, its layers where the capture decoder found them."""

    data: bytes
    start: np.ndarray  # int64
    length: np.ndarray  # int64
    link: np.ndarray  # uint16, 0 where there is no header
    layers: Layers

    def __len__(self) -> int:
        return len(self.start)

    def take(self, idx: np.ndarray) -> SampledHeaders:
        return SampledHeaders(self.data, self.start[idx], self.length[idx], self.link[idx],
                              self.layers.take(idx))

    def octets(self) -> np.ndarray:
        """``data`` as a uint8 array (a view, no copy)."""
        return np.frombuffer(self.data, dtype=np.uint8)

    def inside(self, tunnels: frozenset[str]) -> tuple[np.ndarray, Layers]:
        """Which rows are tunnel packets of a kind ``tunnels`` names (the capture decoder's
        switches: ``gre``, ``ipInIp``, ``geneve``...), and the layers of the packet inside
        (the innermost one opened). Decoded again, with those tunnels open."""
        stats = DecodeStats()  # a second look at counted headers: not counted again
        ok, cols = decode_headers(self.data, self.start, self.length, self.link,
                                  (*LAYER_COLUMNS, "tunnel_kind"), stats, tunnels)
        opened = ok & (cols["tunnel_kind"] != 0)
        return opened, Layers.of(opened, cols)
