"""Per-domain state: one observation domain of one transport session (RFC 7011 §8, RFC 3954 §5).

Sequence numbers and Template IDs are scoped by (transport session, observation domain), so both
ends keep one ``DomainState`` per pair: the exporter for what it has sent, the collector for
what it has seen. A new transport session starts every domain afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(slots=True)
class DomainState:
    # The sequence number the domain's next message carries (IPFIX: data records before it;
    # NetFlow v9: messages; NetFlow v5: flows). The exporter counts from 0; the collector's
    # expectation is None until a message could be counted (a data set held for its Template
    # has an unknown record count).
    sequence: int | None = None

    # Exporting side: Templates announced in this session, and the UDP refresh timers (RFC
    # 7011 §8.4), kept apart for data (False) and options (True) Templates as RFC 6728 does.
    templates_sent: set[int] = field(default_factory=set)
    last_refresh_us: dict[bool, int] = field(default_factory=dict)
    refresh_mark: dict[bool, int] = field(default_factory=dict)  # session messages at refresh
    last_options_us: int | None = None

    # Collecting side: what the domain's options records said.
    sampling_rate: int = 0  # domain-wide 1-in-N (0 = unknown / unsampled)
    samplers: OrderedDict[int, int] = field(default_factory=OrderedDict)  # selector id -> rate
    sys_init_ms: int | None = None  # systemInitTimeMilliseconds
