"""Per-exporter state: templates, held data sets, sequence and sampling state, all bounded.

State is keyed the way RFC 7011 §8 scopes Template IDs: transport session (exporter address and
port for UDP, the connection for TCP) x observation domain (v9: source id) x template id. Every
table has a bound from ``Limits``; hitting one is counted, never raised.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from probe.collect.columns import Layout, compile_layout
from probe.collect.limits import Limits
from probe.collect.pending import Pending
from probe.collect.stats import CollectStats
from probe.wire import DomainState, Template


@dataclass(slots=True)
class MessageContext:
    """Header facts a record needs (times, sequence), kept with held sets for later decoding."""

    type: str  # "IPFIX", "NETFLOW_V9", "NETFLOW_V5"
    received_ns: int
    sequence: int
    domain: int  # IPFIX observation domain, v9 source id, v5 engine type<<8|engine id
    exporter: str  # sampler_address: the exporter's IP as text
    export_secs: int
    sys_uptime_ms: int | None = None  # v5 / v9 header
    unix_nsecs: int = 0  # v5 header
    header_sampling: int = 0  # v5 header sampling interval


@dataclass(slots=True)
class HeldSet:
    domain: int
    template_id: int
    body: bytes
    ctx: MessageContext
    since: float  # monotonic seconds


@dataclass(slots=True)
class Session:
    key: Hashable
    templates: dict[tuple[int, int], Template] = field(default_factory=dict)
    # The Layout of each fixed-length Template (None: a field of variable length).
    layouts: dict[tuple[int, int], Layout | None] = field(default_factory=dict)
    # UDP only (RFC 7011 §8.4): when each template was last (re)sent, for its lifetime.
    template_seen: dict[tuple[int, int], float] = field(default_factory=dict)
    udp: bool = True
    held: deque[HeldSet] = field(default_factory=deque)
    domains: OrderedDict[int, DomainState] = field(default_factory=OrderedDict)


class SessionTable:
    """All sessions, LRU-bounded, with global budgets for template fields and held bytes."""

    def __init__(self, limits: Limits, stats: CollectStats) -> None:
        self.limits = limits
        self.stats = stats
        self.sessions: OrderedDict[Hashable, Session] = OrderedDict()
        self.template_fields = 0
        self.held_bytes = 0
        self.now = 0.0  # monotonic time of the message being decoded (set by the Decoder)
        self.pending = Pending()

    # ------------------------------------------------------------------ sessions
    def get(self, key: Hashable) -> Session:
        s = self.sessions.get(key)
        if s is not None:
            self.sessions.move_to_end(key)
            return s
        while len(self.sessions) >= self.limits.max_sessions:
            _, old = self.sessions.popitem(last=False)
            self._release(old)
            self.stats.sessions_evicted += 1
        s = Session(key, udp=not (isinstance(key, tuple) and key[:1] == ("tcp",)))
        self.sessions[key] = s
        return s

    def close(self, key: Hashable) -> None:
        """A TCP connection ended: its templates die with it (RFC 7011 §8.1)."""
        s = self.sessions.pop(key, None)
        if s is not None:
            self._release(s)

    def _release(self, s: Session) -> None:
        self.template_fields -= sum(len(t.specs) for t in s.templates.values())
        self.held_bytes -= sum(len(h.body) for h in s.held)
        if s.held:
            self.stats.bad("held_dropped_session_closed", len(s.held))
        s.templates.clear()
        s.template_seen.clear()
        s.layouts.clear()
        s.held.clear()

    def domain(self, s: Session, domain: int) -> DomainState:
        d = s.domains.get(domain)
        if d is not None:
            s.domains.move_to_end(domain)
            return d
        while len(s.domains) >= self.limits.max_domains_per_session:
            s.domains.popitem(last=False)
        d = DomainState()
        s.domains[domain] = d
        return d

    # ------------------------------------------------------------------ templates
    def is_refresh(self, s: Session, domain: int, template_id: int, options: bool,
                   wire: bytes) -> bool:
        """A template re-sent unchanged (the usual UDP refresh): nothing to compile."""
        t = s.templates.get((domain, template_id))
        if t is None or t.wire != wire or t.is_options != options:
            return False
        if s.udp:
            s.template_seen[(domain, template_id)] = self.now
        self.stats.templates += 1
        return True

    def template(self, s: Session, domain: int, template_id: int
                 ) -> tuple[Template, Layout | None] | None:
        """The live template and its Layout, or None; over UDP a template not re-sent within
        its lifetime is dropped (RFC 7011 §8.4): the exporter may have restarted with other
        templates."""
        key = (domain, template_id)
        t = s.templates.get(key)
        if t is None:
            return None
        if s.udp and \
                self.now - s.template_seen.get(key, self.now) > self.limits.template_lifetime_s:
            self._drop(s, key)
            self.stats.bad("template_expired")
            return None
        return t, s.layouts.get(key)

    def _drop(self, s: Session, key: tuple[int, int]) -> Template:
        s.template_seen.pop(key, None)
        s.layouts.pop(key, None)
        t = s.templates.pop(key)
        self.template_fields -= len(t.specs)
        return t

    def room_for(self, s: Session, domain: int, template_id: int, n_fields: int) -> bool:
        """Cheap check before compiling a template, so a flood past the limit costs little."""
        if (domain, template_id) in s.templates:
            return True
        if (len(s.templates) >= self.limits.max_templates_per_session
                or self.template_fields + n_fields > self.limits.max_template_fields):
            self.stats.bad("template_limit")
            return False
        return True

    def add_template(self, s: Session, domain: int, t: Template) -> bool:
        key = (domain, t.template_id)
        old = s.templates.get(key)
        if old is None and len(s.templates) >= self.limits.max_templates_per_session:
            self.stats.bad("template_limit")
            return False
        grow = len(t.specs) - (len(old.specs) if old is not None else 0)
        if self.template_fields + grow > self.limits.max_template_fields:
            self.stats.bad("template_limit")
            return False
        self.template_fields += grow
        s.templates[key] = t
        s.layouts[key] = None if t.is_options else compile_layout(t.specs, t.names)
        if s.udp:
            s.template_seen[key] = self.now
        self.stats.templates += 1
        return True

    def withdraw(self, s: Session, domain: int, template_id: int | None, options: bool) -> None:
        """Withdraw one template, or (``template_id`` None) all (options) templates of a domain."""
        if template_id is not None:
            if (domain, template_id) not in s.templates:
                self.stats.bad("withdrawal_unknown_template")
                return
            self._drop(s, (domain, template_id))
            self.stats.withdrawals += 1
            return
        for key in [k for k, t in s.templates.items() if k[0] == domain
                    and t.is_options == options]:
            self._drop(s, key)
            self.stats.withdrawals += 1

    # ------------------------------------------------------------------ held data sets
    def hold(self, s: Session, h: HeldSet) -> None:
        if len(s.held) >= self.limits.max_held_per_session:
            old = s.held.popleft()
            self.held_bytes -= len(old.body)
            self.stats.bad("held_dropped_limit")
        if self.held_bytes + len(h.body) > self.limits.max_held_bytes:
            self.stats.bad("held_dropped_limit")
            return
        s.held.append(h)
        self.held_bytes += len(h.body)
        self.stats.held += 1

    def take_held(self, s: Session, domain: int, template_id: int) -> list[HeldSet]:
        if not s.held:
            return []
        take = [h for h in s.held if h.domain == domain and h.template_id == template_id]
        if take:
            keep = [h for h in s.held if not (h.domain == domain and h.template_id == template_id)]
            s.held = deque(keep)
            self.held_bytes -= sum(len(h.body) for h in take)
        return take

    def expire(self, now: float, only: Session | None = None) -> None:
        """Drop held data sets older than the age limit (their template never came)."""
        limit = now - self.limits.held_max_age_s
        for s in (only,) if only is not None else tuple(self.sessions.values()):
            while s.held and s.held[0].since < limit:
                self.held_bytes -= len(s.held.popleft().body)
                self.stats.bad("held_expired")

    def sampler_added(self, s: Session, n: int) -> None:
        """An options record added ``n`` selector entries to a domain of ``s``."""

    def held_count(self) -> int:
        return sum(len(s.held) for s in self.sessions.values())

    def template_count(self) -> int:
        return sum(len(s.templates) for s in self.sessions.values())


def unpack_header(data: bytes, header: struct.Struct, version: int,
                  stats: CollectStats) -> tuple | None:
    """The header fields, or None (counted) if the message is too short or another version."""
    if len(data) < header.size:
        stats.bad("short_header")
        return None
    fields = header.unpack_from(data)
    if fields[0] != version:
        stats.bad("bad_version")
        return None
    return fields


def sequence_gap(ds: DomainState, seq: int, stats: CollectStats,
                 window: int = 10_000) -> int | None:
    """Units missing before ``seq`` (0 when unknown or after a restart); None when ``seq`` is a
    little behind (a reordered message: the expectation stays). Far behind (more than
    ``window``) is an exporter restart: counted, and the caller resynchronises."""
    if ds.sequence is None:
        return 0
    gap = (seq - ds.sequence) & 0xFFFFFFFF
    if gap >= 1 << 31:
        if (1 << 32) - gap <= window:
            stats.out_of_order += 1
            return None
        stats.sequence_resets += 1
        return 0
    return gap
