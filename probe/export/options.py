"""Options Templates and records: exporting-process reliability and the sampling configuration.

IPFIX (RFC 7011 §4.3, RFC 5476 §6.5): one record scoped by exportingProcessId with the
exported/not-sent totals of the transport session (plus systemInitTimeMilliseconds, which lets
a collector turn sysUpTime fields into absolute times, and ignoredPacketTotalCount, the packets
the metering could not decode, from the pipeline's statistics), and one record per selector of the
Selection Processes feeding this Exporting Process, scoped by selectorId, carrying
selectorAlgorithm (IANA psamp-parameters: 1 systematic count-based, 2 systematic time-based,
3 random n-out-of-N, 4 uniform probabilistic) and its parameters. selectAll has no IANA
algorithm number and changes nothing a collector would scale, so it is not announced.

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
    SampCountBased,
    SampRandOutOfN,
    SampTimeBased,
    SampUniProb,
    Selector,
)
from probe.export.encoding import encode_rows
from probe.export.templates import TemplateRegistry
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


def feeding_selectors(ep: ExportingProcess, config: Config) -> list[NumberedSelector]:
    """Selectors of every Selection Process whose Cache exports to ``ep``."""
    out = []
    sel_id = 0
    for sp in config.selection_processes:
        feeds = sp.cache is not None and any(e.name == ep.name
                                             for e in sp.cache.exporting_processes)
        for s in sp.selectors:
            sel_id += 1
            if feeds:
                out.append(NumberedSelector(sel_id, s))
    return out


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


class OptionsPlan:
    """Which Options Templates a session announces in a domain, and their current records."""

    def __init__(self, version: int, ep_id: int, selectors: list[NumberedSelector],
                 registry: TemplateRegistry) -> None:
        self.version = version
        self.ep_id = ep_id
        self.selectors = selectors
        self.registry = registry
        self.interval, self.random = sampling_interval(selectors)

    def _reliability_template(self, domain: int) -> Template:
        specs = (FieldSpec(EXPORTING_PROCESS_ID, 4), *(FieldSpec(i, 8)
                                                       for i in _RELIABILITY_FIELDS))
        return self.registry.get(domain, specs, 1)

    def _selector_template(self, domain: int, s: Selector) -> Template:
        _, params = _ALGO_PARAMS[type(s)]
        specs = (FieldSpec(302, 8), FieldSpec(304, 2),
                 *(FieldSpec(ie, 8 if ie == 311 else 4) for ie, _ in params))
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
            for ns in self.selectors:
                if type(ns.selector) not in _ALGO_PARAMS:
                    continue
                algo, params = _ALGO_PARAMS[type(ns.selector)]
                t = self._selector_template(domain, ns.selector)
                row = {302: ns.selector_id, 304: algo}
                row.update({ie: getattr(ns.selector, attr) for ie, attr in params})
                out.append((t, encode_rows(t.specs, [row]), 1))
        elif self.version == 9 and self.interval > 1:
            t = self._v9_sampling_template(domain)
            row = {V9_SCOPE_SYSTEM: domain, 34: self.interval, 35: 2 if self.random else 1}
            out.append((t, encode_rows(t.specs, [row]), 1))
        return out
