"""Template ids and the encoded record chunks that travel from an Exporting Process to its sessions.

A Template (``probe.wire.Template``) is fixed by (observation domain, field specifiers, scope
count); the registry hands out ids from 256 (RFC 7011 §3.4.1) and returns the same Template for
the same layout, so every destination of an Exporting Process shares one id space and one
encoding per batch. Ids are unique across observation domains, not only within one: RFC 7011
scopes a Template to its domain, but libfixbuf (ipfixDump, YAF's tools) keeps one Template per
id in a transport session, and read the options Template of domain 0 and the flow Template of
domain 1, both 256, as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from probe.cache.build import layout_for
from probe.cache.records import RecordBatch
from probe.config.model import CacheField, Config, ExportingProcess
from probe.export.encoding import encode_columns
from probe.ie import by_name
from probe.wire import FIRST_TEMPLATE_ID, FieldSpec, Template


def cache_field_spec(f: CacheField) -> FieldSpec:
    """The Template field specifier of one cache field (``ie_length``: reduced-size encoding)."""
    ie = by_name(f.ie_name)
    length = f.ie_length or (ie.length if ie is not None else None)
    if ie is None or length is None:
        raise ValueError(f"cache field {f.name!r}: IE {f.ie_name!r} has no fixed length")
    return FieldSpec(ie.id, length, ie.pen)


class TemplateRegistry:
    """Template ids, unique across the observation domains of every transport session of an
    Exporting Process (its destinations share them)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[int, tuple[FieldSpec, ...], int], Template] = {}
        self._next = FIRST_TEMPLATE_ID

    def get(self, domain: int, specs: tuple[FieldSpec, ...], scope_count: int = 0,
            names: tuple[str, ...] = ()) -> Template:
        key = (domain, specs, scope_count)
        t = self._by_key.get(key)
        if t is None:
            tid = self._next
            if tid > 0xFFFF:
                raise RuntimeError(f"observation domain {domain}: template ids exhausted")
            self._next = tid + 1
            t = Template(tid, domain, specs, scope_count, names)
            self._by_key[key] = t
        return t

    def for_batch(self, batch: RecordBatch) -> Template:
        specs = tuple(cache_field_spec(f) for f in batch.fields)
        return self.get(batch.observation_domain_id, specs, 0,
                        tuple(f.ie_name for f in batch.fields))


def cache_templates(ep: ExportingProcess, config: Config, registry: TemplateRegistry
                    ) -> list[Template]:
    """Every data Template the caches feeding ``ep`` can use: one per IP version of each
    layout, in the observation domain the pipeline meters that cache for (its first
    observation point's), exactly as ``for_batch`` will make them."""
    domains: dict[str, int] = {}
    for op in config.observation_points:
        for sp in op.selection_processes:
            if sp.cache is not None:
                domains.setdefault(sp.cache.name, op.observation_domain_id)
    out = []
    for cache in config.caches:
        if cache.name not in domains or all(e.name != ep.name
                                            for e in cache.exporting_processes):
            continue
        for version in (4, 6):
            fields = layout_for(cache.layout, version)
            if fields:
                out.append(registry.get(domains[cache.name],
                                        tuple(cache_field_spec(f) for f in fields), 0,
                                        tuple(f.ie_name for f in fields)))
    return out


@dataclass(slots=True)
class Chunk:
    """Encoded records of one Template, not yet framed into messages.

    Kept unframed so a TCP session that reconnects can frame them again with fresh sequence
    numbers and templates; ``cum_packets``/``cum_octets`` (length n + 1, running totals
    from any origin: a slice shares its parent's, unshifted) give the packet and octet totals
    of any slice, which the not-sent counters need when records are dropped.
    """

    domain: int
    template: Template | None  # None: NetFlow v5 (no templates)
    payload: bytes
    record_len: int
    cum_packets: np.ndarray
    cum_octets: np.ndarray
    n: int = field(init=False)

    def __post_init__(self) -> None:
        self.n = len(self.payload) // self.record_len

    def slice(self, a: int, b: int) -> Chunk:
        """Records ``a:b`` (one per message sent: views, no arithmetic)."""
        return Chunk(self.domain, self.template, self.payload[a * self.record_len:
                                                              b * self.record_len],
                     self.record_len, self.cum_packets[a:b + 1], self.cum_octets[a:b + 1])

    @property
    def packets(self) -> int:
        return int(self.cum_packets[-1] - self.cum_packets[0])

    @property
    def octets(self) -> int:
        return int(self.cum_octets[-1] - self.cum_octets[0])


def cumulative(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values) + 1, dtype=np.uint64)
    np.cumsum(values, dtype=np.uint64, out=out[1:])
    return out


def encode_batch(batch: RecordBatch, template: Template) -> Chunk:
    """Encode a whole RecordBatch with its data Template (vectorised)."""
    n = len(batch)
    # sysUpTime columns are already on the headers' millisecond grid (records.uptime_ms)
    cols = [batch.columns[name] for name in template.names]
    payload = encode_columns(template.specs, cols, n)
    return Chunk(batch.observation_domain_id, template, payload, template.record_len,
                 cumulative(batch.columns["_packets"]), cumulative(batch.columns["_octets"]))


def concat_chunks(chunks: list[Chunk]) -> Chunk:
    """One Chunk of several of the same Template, in order."""
    if len(chunks) == 1:
        return chunks[0]
    first = chunks[0]
    packets = [first.cum_packets]
    octets = [first.cum_octets]
    for c in chunks[1:]:
        packets.append(c.cum_packets[1:] - c.cum_packets[0] + packets[-1][-1])
        octets.append(c.cum_octets[1:] - c.cum_octets[0] + octets[-1][-1])
    return Chunk(first.domain, first.template, b"".join(c.payload for c in chunks),
                 first.record_len, np.concatenate(packets), np.concatenate(octets))
