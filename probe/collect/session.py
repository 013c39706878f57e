"""Per-exporter state: templates, held data sets, sequence and sampling state, all bounded.

State is keyed the way RFC 7011 §8 scopes Template IDs: transport session (exporter address and
port for UDP, the connection for TCP) x observation domain (v9: source id) x template id. What
a session keeps is charged to it and to its exporter address (``probe.collect.limits``);
hitting a bound is counted (and a refused template logged), never raised.
"""

from __future__ import annotations

import logging
import struct
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from probe.collect.columns import Layout, compile_layout
from probe.collect.limits import COST, LOG_EVERY_S, Limits
from probe.collect.pending import Pending
from probe.collect.stats import CollectStats
from probe.wire import DomainState, Template

log = logging.getLogger("probe.collect")


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
    exporter: str = ""  # the exporter's address: budgets are kept per address too
    templates: dict[tuple[int, int], Template] = field(default_factory=dict)
    # The Layout of each fixed-length Template (None: a field of variable length).
    layouts: dict[tuple[int, int], Layout | None] = field(default_factory=dict)
    # UDP only (RFC 7011 §8.4): when each template was last (re)sent, for its lifetime.
    template_seen: dict[tuple[int, int], float] = field(default_factory=dict)
    udp: bool = True
    held: deque[HeldSet] = field(default_factory=deque)
    domains: OrderedDict[int, DomainState] = field(default_factory=OrderedDict)
    cost: int = 0  # estimated bytes charged (probe.collect.limits.COST)


def template_cost(t: Template) -> int:
    return COST["template"] + COST["template_field"] * len(t.specs) + len(t.wire)


def held_cost(h: HeldSet) -> int:
    return COST["held"] + len(h.body)


def domain_cost(d: DomainState) -> int:
    return COST["domain"] + COST["sampler"] * len(d.samplers)


class SessionTable:
    """All sessions, with their budgets (``probe.collect.limits``): per session, per exporter
    address, and all together, where the biggest address pays for a newcomer."""

    def __init__(self, limits: Limits, stats: CollectStats) -> None:
        self.limits = limits
        self.stats = stats
        self.sessions: OrderedDict[Hashable, Session] = OrderedDict()
        self.by_exporter: dict[str, OrderedDict[Hashable, Session]] = {}
        self.exporter_cost: dict[str, int] = {}
        self.total_cost = 0
        self.now = 0.0  # monotonic time of the message being decoded (set by the Decoder)
        self.pending = Pending()
        self._logged: dict[str, tuple[float, int]] = {}  # exporter -> (last log, suppressed)

    @property
    def held_bytes(self) -> int:
        return sum(len(h.body) for s in self.sessions.values() for h in s.held)

    @property
    def template_fields(self) -> int:
        return sum(len(t.specs) for s in self.sessions.values() for t in s.templates.values())

    # ------------------------------------------------------------------ budgets
    def _charge(self, s: Session, n: int, reason: str) -> bool:
        """Charge ``n`` bytes to ``s``; False (counted as ``reason``) if it cannot have them."""
        lim = self.limits
        if s.cost + n > lim.session_bytes or \
                self.exporter_cost.get(s.exporter, 0) + n > lim.exporter_bytes:
            self.stats.bad(reason)
            return False
        while self.total_cost + n > lim.state_bytes:
            if not self._evict_biggest(s):
                self.stats.bad(reason)
                return False
        s.cost += n
        self.exporter_cost[s.exporter] = self.exporter_cost.get(s.exporter, 0) + n
        self.total_cost += n
        return True

    def _force(self, s: Session, n: int) -> None:
        """Charge what must be kept whatever the budgets say (bounded by the session count)."""
        s.cost += n
        self.exporter_cost[s.exporter] = self.exporter_cost.get(s.exporter, 0) + n
        self.total_cost += n

    def _refund(self, s: Session, n: int) -> None:
        s.cost -= n
        self.exporter_cost[s.exporter] = self.exporter_cost.get(s.exporter, 0) - n
        self.total_cost -= n

    def _evict_biggest(self, asking: Session) -> bool:
        """The state budget is full: the address holding the most gives up its least recently
        used session (never the asking one's address: it is then the biggest and must wait)."""
        if not self.exporter_cost:
            return False
        biggest = max(self.exporter_cost, key=self.exporter_cost.__getitem__)
        if biggest == asking.exporter:
            return False
        victims = self.by_exporter.get(biggest)
        if not victims:
            return False
        key = next(iter(victims))
        self._remove(key)
        self.stats.sessions_evicted += 1
        return True

    def refused(self, s: Session, what: str) -> None:
        """Log a refusal, at most once per LOG_EVERY_S per exporter, with what was held back."""
        last, quiet = self._logged.get(s.exporter, (-LOG_EVERY_S, 0))
        if self.now - last < LOG_EVERY_S:
            self._logged[s.exporter] = (last, quiet + 1)
            return
        if len(self._logged) >= 1024 and s.exporter not in self._logged:
            self._logged.clear()
        self._logged[s.exporter] = (self.now, 0)
        more = f" ({quiet} more refusals not logged)" if quiet else ""
        log.warning("exporter %s: %s refused: its share of the collector's memory is used "
                    "(session %d bytes, exporter %d bytes, all %d of %d)%s", s.exporter, what,
                    s.cost, self.exporter_cost.get(s.exporter, 0), self.total_cost,
                    self.limits.state_bytes, more)

    # ------------------------------------------------------------------ sessions
    def get(self, key: Hashable, exporter: str = "") -> Session:
        s = self.sessions.get(key)
        if s is not None:
            self.sessions.move_to_end(key)
            self.by_exporter[s.exporter].move_to_end(key)
            return s
        mine = self.by_exporter.setdefault(exporter, OrderedDict())
        while len(mine) >= self.limits.max_sessions_per_exporter:
            self._remove(next(iter(mine)))
            self.stats.sessions_evicted += 1
        while len(self.sessions) >= self.limits.max_sessions:
            self._remove(next(iter(self.sessions)))
            self.stats.sessions_evicted += 1
        # TCP and IPFIX Files (RFC 5655) keep Templates for the whole session; UDP does not
        s = Session(key, exporter,
                    udp=not (isinstance(key, tuple) and key[:1] in (("tcp",), ("file",))))
        self.sessions[key] = s
        self.by_exporter.setdefault(exporter, OrderedDict())[key] = s
        if not self._charge(s, COST["session"], "session_limit"):
            self._force(s, COST["session"])  # kept all the same: at most max_sessions of them
        return s

    def close(self, key: Hashable) -> None:
        """A TCP connection ended: its templates die with it (RFC 7011 §8.1)."""
        if key in self.sessions:
            self._remove(key)

    def _remove(self, key: Hashable) -> None:
        s = self.sessions.pop(key)
        mine = self.by_exporter.get(s.exporter)
        if mine is not None:
            mine.pop(key, None)
            if not mine:
                del self.by_exporter[s.exporter]
        if s.held:
            self.stats.bad("held_dropped_session_closed", len(s.held))
        self._refund(s, s.cost)
        if self.exporter_cost.get(s.exporter) == 0 and s.exporter not in self.by_exporter:
            del self.exporter_cost[s.exporter]
        s.templates.clear()
        s.template_seen.clear()
        s.layouts.clear()
        s.held.clear()
        s.domains.clear()

    def domain(self, s: Session, domain: int) -> DomainState:
        d = s.domains.get(domain)
        if d is not None:
            s.domains.move_to_end(domain)
            return d
        while len(s.domains) >= self.limits.max_domains_per_session:
            _, old = s.domains.popitem(last=False)
            self._refund(s, domain_cost(old))
        while not self._charge(s, COST["domain"], "domain_limit"):
            if not s.domains:  # the one domain a message needs: kept all the same
                self._force(s, COST["domain"])
                break
            _, old = s.domains.popitem(last=False)  # the session recycles its oldest domain
            self._refund(s, domain_cost(old))
        d = DomainState()
        s.domains[domain] = d
        return d

    def sampler_room(self, s: Session) -> bool:
        """May a domain of ``s`` learn one more selector? (Charged if so.)"""
        return self._charge(s, COST["sampler"], "sampler_limit")

    def sampler_refund(self, s: Session, n: int) -> None:
        self._refund(s, COST["sampler"] * n)

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
        self._refund(s, template_cost(t))
        return t

    def room_for(self, s: Session, domain: int, template_id: int, n_fields: int) -> bool:
        """Cheap check before compiling a template, so a flood past the limit costs little."""
        if (domain, template_id) in s.templates:
            return True
        lim = self.limits
        need = COST["template"] + COST["template_field"] * n_fields
        if len(s.templates) >= lim.max_templates_per_session or \
                s.cost + need > lim.session_bytes or \
                self.exporter_cost.get(s.exporter, 0) + need > lim.exporter_bytes:
            self.stats.bad("template_limit")
            self.refused(s, f"template {template_id} of domain {domain} ({n_fields} fields)")
            return False
        return True

    def add_template(self, s: Session, domain: int, t: Template) -> bool:
        key = (domain, t.template_id)
        old = s.templates.get(key)
        if old is None and len(s.templates) >= self.limits.max_templates_per_session:
            self.stats.bad("template_limit")
            self.refused(s, f"template {t.template_id} of domain {domain}")
            return False
        if old is not None:
            self._drop(s, key)
        if not self._charge(s, template_cost(t), "template_limit"):
            self.refused(s, f"template {t.template_id} of domain {domain} "
                            f"({len(t.specs)} fields)")
            return False
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
            self._refund(s, held_cost(s.held.popleft()))
            self.stats.bad("held_dropped_limit")
        if not self._charge(s, held_cost(h), "held_dropped_limit"):
            return
        s.held.append(h)
        self.stats.held += 1

    def take_held(self, s: Session, domain: int, template_id: int) -> list[HeldSet]:
        if not s.held:
            return []
        take = [h for h in s.held if h.domain == domain and h.template_id == template_id]
        if take:
            keep = [h for h in s.held if not (h.domain == domain and h.template_id == template_id)]
            s.held = deque(keep)
            self._refund(s, sum(held_cost(h) for h in take))
        return take

    def expire(self, now: float, only: Session | None = None) -> None:
        """Drop held data sets older than the age limit (their template never came)."""
        limit = now - self.limits.held_max_age_s
        for s in (only,) if only is not None else tuple(self.sessions.values()):
            while s.held and s.held[0].since < limit:
                self._refund(s, held_cost(s.held.popleft()))
                self.stats.bad("held_expired")

    def drop_held(self) -> int:
        """At shutdown: every held data set, dropped; how many there were."""
        n = 0
        for s in self.sessions.values():
            n += len(s.held)
            self._refund(s, sum(held_cost(h) for h in s.held))
            s.held.clear()
        return n

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
