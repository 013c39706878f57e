"""Options Templates and records: exporting-process reliability, the selectors and the
selection sequences.

IPFIX (RFC 7011 §4.3, RFC 5476 §6.5): one record scoped by exportingProcessId with the
exported/not-sent totals of the transport session (plus systemInitTimeMilliseconds, which lets
a collector turn sysUpTime fields into absolute times, and ignoredPacketTotalCount, the packets
the metering could not decode, from the pipeline's statistics), and a Selector Report
Interpretation per selector of the Selection Processes feeding this Exporting Process, scoped
by selectorId, carrying selectorAlgorithm (IANA psamp-parameters: 1 systematic count-based,
2 systematic time-based, 3 random n-out-of-N, 4 uniform probabilistic, 5 property match,
6/7/8 hash-based with BOB/IPSX/CRC) and its parameters (RFC 5477 §8.3): for a property match
the matched IE's id and the matched value in that IE; for a hash the payload octets hashed,
the output range, the initializer and each selected range. selectAll has no IANA algorithm
number and changes nothing a collector would scale, so it is not announced.

A Selection Sequence Report Interpretation (RFC 5476 §6.5.1: scope selectionSequenceId, then
the observationPointId and the selectorId of each selector in order) goes with the PSAMP
packet reports of a cache whose layout carries selectionSequenceId, so a collector can tell
which selectors picked each reported packet. The ids are ``probe.config.psamp``'s.

NetFlow v9 (RFC 3954 §6.1): a System-scoped record with samplingInterval (34) and
samplingAlgorithm (35: 1 deterministic, 2 random) when count or random sampling thins the
packets; time-based sampling has no v9 representation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from probe.config.model import (
    Config,
    ExportingProcess,
    FilterHash,
    FilterMatch,
    SampCountBased,
    SampRandOutOfN,
    SampTimeBased,
    SampUniProb,
    SelectionProcess,
    Selector,
)
from probe.config.psamp import SelectionSequence, selection_sequences, selector_ids
from probe.export.encoding import encode_rows, encode_values
from probe.export.templates import TemplateRegistry
from probe.ie import by_id
from probe.wire import FieldSpec, Template

EXPORTING_PROCESS_ID = 144
V9_SCOPE_SYSTEM = 1  # RFC 3954 §6.1 scope field type 1 = System

# exported messages/flows/octets, not sent flows/packets/octets, system init, ignored packets
_RELIABILITY_FIELDS = (41, 42, 40, 166, 167, 168, 160, 164)
_ALGO_PARAMS: dict[type, tuple[int, tuple[tuple[int, str], ...]]] = {
    SampCountBased: (1, ((305, "packet_interval"), (306, "packet_space"))),
    SampTimeBased: (2, ((307, "time_interval"), (308, "time_space"))),
    SampRandOutOfN: (3, ((309, "size"), (310, "population"))),
    SampUniProb: (4, ((311, "probability"),)),
}


@dataclass(frozen=True, slots=True)
class NumberedSelector:
    selector_id: int  # 1-based position among all selectors of the config
    selector: Selector


def feeds(sp: SelectionProcess, ep: ExportingProcess) -> bool:
    """Whether ``sp``'s Cache exports to ``ep``."""
    return sp.cache is not None and any(e.name == ep.name for e in sp.cache.exporting_processes)


def feeding_selectors(ep: ExportingProcess, config: Config) -> list[NumberedSelector]:
    """Selectors of every Selection Process whose Cache exports to ``ep``."""
    ids = selector_ids(config)
    return [NumberedSelector(ids[(sp.name, s.name)], s) for sp in config.selection_processes
            if feeds(sp, ep) for s in sp.selectors]


def sampling_interval(selectors: list[NumberedSelector]) -> tuple[int, bool]:
    """(1-out-of-N, random?) of the selectors in sequence; N = 1 when nothing thins packets."""
    n = 1.0
    random = False
    for ns in selectors:
        s = ns.selector
        if isinstance(s, SampCountBased):
            n *= (s.packet_interval + s.packet_space) / s.packet_interval
        elif isinstance(s, SampRandOutOfN):
            n *= s.population / s.size
            random = True
        elif isinstance(s, SampUniProb) and s.probability > 0:
            n *= 1.0 / s.probability
            random = True
    return max(1, round(n)), random


SELECTOR_ID, SELECTOR_ALGORITHM, SELECTION_SEQUENCE_ID, OBSERVATION_POINT_ID = 302, 304, 301, 138
_HASH_ALGORITHM = {"BOB": 6, "IPSX": 7, "CRC": 8}
PROPERTY_MATCH = 5
_INFORMATION_ELEMENT_ID = 303


def reported_sequences(ep: ExportingProcess, config: Config) -> list[SelectionSequence]:
    """The selection sequences whose packet reports this exporting process carries: those
    ending in a cache that exports to it and reports selectionSequenceId."""
    return [seq for seq in selection_sequences(config)
            if feeds(seq.selection_process, ep) and seq.selection_process.cache is not None
            and "selectionSequenceId" in {f.ie_name for f in
                                          seq.selection_process.cache.layout.fields}]


def selector_record(selector_id: int, s: Selector) -> tuple[tuple[FieldSpec, ...], list] | None:
    """The Selector Report Interpretation of ``s`` as (field specifiers, values), or None for
    a selector with no IANA algorithm number (selectAll)."""
    head = [(FieldSpec(SELECTOR_ID, 8), selector_id)]
    if isinstance(s, FilterHash):
        fields = [*head, (FieldSpec(SELECTOR_ALGORITHM, 2), _HASH_ALGORITHM[s.hash_function]),
                  (FieldSpec(327, 8), s.ip_payload_offset), (FieldSpec(328, 8), s.ip_payload_size),
                  (FieldSpec(329, 8), 0), (FieldSpec(330, 8), s.output_range_max),
                  (FieldSpec(333, 1), s.digest_output)]  # hashDigestOutput
        if s.hash_function != "IPSX":  # IPSX takes no initializer (RFC 5475 A.1)
            fields.append((FieldSpec(334, 8), s.initializer_value))
        for r in s.ranges:
            fields += [(FieldSpec(331, 8), r.min), (FieldSpec(332, 8), r.max)]
    elif isinstance(s, FilterMatch):
        ie = by_id(s.ie_id)
        assert ie is not None and ie.length is not None
        fields = [*head, (FieldSpec(SELECTOR_ALGORITHM, 2), PROPERTY_MATCH),
                  (FieldSpec(_INFORMATION_ELEMENT_ID, 2), s.ie_id),
                  (FieldSpec(s.ie_id, ie.length), s.value)]
    elif type(s) in _ALGO_PARAMS:
        algo, params = _ALGO_PARAMS[type(s)]
        fields = [*head, (FieldSpec(SELECTOR_ALGORITHM, 2), algo),
                  *((FieldSpec(ie, 8 if ie == 311 else 4), getattr(s, attr))
                    for ie, attr in params)]
    else:
        return None
    return tuple(f for f, _ in fields), [v for _, v in fields]


def sequence_record(seq: SelectionSequence) -> tuple[tuple[FieldSpec, ...], list]:
    """The Selection Sequence Report Interpretation (RFC 5476 §6.5.1) of ``seq``."""
    specs = (FieldSpec(SELECTION_SEQUENCE_ID, 8), FieldSpec(OBSERVATION_POINT_ID, 4),
             *(FieldSpec(SELECTOR_ID, 8) for _ in seq.selector_ids))
    return specs, [seq.sequence_id, seq.observation_point_id, *seq.selector_ids]


class OptionsPlan:
    """Which Options Templates a session announces in a domain, and their current records."""

    def __init__(self, version: int, ep_id: int, selectors: list[NumberedSelector],
                 registry: TemplateRegistry,
                 sequences: list[SelectionSequence] | None = None) -> None:
        self.version = version
        self.ep_id = ep_id
        self.selectors = selectors
        self.sequences = sequences or []
        self.registry = registry
        self.interval, self.random = sampling_interval(selectors)

    def _reliability_template(self, domain: int) -> Template:
        specs = (FieldSpec(EXPORTING_PROCESS_ID, 4), *(FieldSpec(i, 8)
                                                       for i in _RELIABILITY_FIELDS))
        return self.registry.get(domain, specs, 1)

    def _v9_sampling_template(self, domain: int) -> Template:
        specs = (FieldSpec(V9_SCOPE_SYSTEM, 4), FieldSpec(34, 4), FieldSpec(35, 1))
        return self.registry.get(domain, specs, 1)

    def records(self, domain: int, stats: Mapping[str, int], sys_init_us: int
                ) -> list[tuple[Template, bytes, int]]:
        """(template, encoded records, count) to send now in ``domain``."""
        out: list[tuple[Template, bytes, int]] = []
        if self.version == 10:
            t = self._reliability_template(domain)
            row = {EXPORTING_PROCESS_ID: self.ep_id, 41: stats["messages"], 42: stats["records"],
                   40: stats["bytes"], 166: stats["not_sent_records"],
                   167: stats["not_sent_packets"], 168: stats["not_sent_octets"],
                   160: sys_init_us // 1000, 164: stats.get("ignored_packets", 0)}
            out.append((t, encode_rows(t.specs, [row]), 1))
            interpretations = [selector_record(ns.selector_id, ns.selector)
                               for ns in self.selectors]
            interpretations += [sequence_record(seq) for seq in self.sequences]
            for rec in interpretations:
                if rec is None:
                    continue
                specs, values = rec
                t = self.registry.get(domain, specs, 1)
                out.append((t, encode_values(t.specs, [values]), 1))
        elif self.version == 9 and self.interval > 1:
            t = self._v9_sampling_template(domain)
            row = {V9_SCOPE_SYSTEM: domain, 34: self.interval, 35: 2 if self.random else 1}
            out.append((t, encode_rows(t.specs, [row]), 1))
        return out
