"""Bounds on everything an exporter (or an attacker posing as one) can make the collector keep.

The collector listens on a network port, so memory must not grow with what it is sent, and no
exporter may take what another needs. Everything kept per exporter is charged, in estimated
bytes (``COST``), to its transport session and to its exporter address:

- a session may hold at most ``session_bytes`` (and ``max_templates_per_session`` templates,
  ``max_domains_per_session`` domains, ``max_held_per_session`` held data sets);
- an exporter address, over all its sessions (UDP source ports, TCP connections), at most
  ``exporter_bytes`` and ``max_sessions_per_exporter`` sessions (its least recently used
  session makes room for a new one);
- all of them together at most ``state_bytes``. When that is full, the least recently used
  session of the address holding the most makes room, so a newcomer always gets its share and
  the biggest holder pays: one source can only exhaust its own share.

What cannot be charged is refused and counted (``CollectStats.malformed``: ``template_limit``,
``held_dropped_limit``, ``sampler_limit``, ...), and a refused template is logged, at most once
per ``LOG_EVERY_S`` per exporter. ``memory_limits`` derives the budgets from one number, the
bound on the process's memory (``flowprobe collect --max-memory``, 256 MiB by default): what the
process needs itself (``BASELINE``: the interpreter, numpy, a full decode queue and its JSON)
comes off first, and half of the rest is the state budget (the allocator's slack and
copy-on-write of selector tables take the other half). tests/collect/test_limits.py measures
the process's peak RSS under floods of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MiB = 1 << 20
DEFAULT_MAX_MEMORY = 256 * MiB
BASELINE = 72 * MiB  # RSS of an idle collector (~45 MiB) plus a full decode queue and its JSON
LOG_EVERY_S = 10.0

# Estimated bytes of what is kept (measured with tracemalloc, rounded up): a Template per
# field (its specifier, name, numpy dtype field and column maker) and per octet of its wire
# form; a held data set beyond its body; a domain's state; one selector entry; a session.
COST = {"template": 2048, "template_field": 400, "held": 256, "domain": 800, "sampler": 160,
        "session": 2048}


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = 4096  # transport sessions (UDP exporter address:port, TCP connection)
    max_sessions_per_exporter: int = 64  # per exporter address; its LRU session makes room
    max_templates_per_session: int = 1024  # new templates beyond this are refused
    max_fields_per_template: int = 512  # a template with more fields is rejected
    max_domains_per_session: int = 256  # sequence / sampling / init-time state; LRU
    max_samplers_per_domain: int = 256  # sampler / selector id -> interval table; LRU
    max_held_per_session: int = 64  # data sets waiting for their template
    held_max_age_s: float = 30.0  # held data sets older than this are dropped
    template_lifetime_s: float = 1800.0  # UDP templates not re-sent for this long are dropped
    max_connections: int = 256  # concurrent TCP connections; more are refused
    max_tcp_buffer: int = 256 * 1024  # bytes buffered on one TCP connection without a message
    state_bytes: int = 64 * MiB  # everything exporters make the collector keep, together
    exporter_bytes: int = 16 * MiB  # ... one exporter address, over all its sessions
    session_bytes: int = 8 * MiB  # ... one transport session


DEFAULT_LIMITS = Limits()


def memory_limits(max_memory: int | None = None, workers: int = 1) -> Limits:
    """The budgets that keep a collector of ``workers`` processes under ``max_memory`` bytes
    (each worker gets an equal part; the parent of several workers writes only)."""
    total = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
    share = total // (workers + 1) if workers > 1 else total
    state = max(4 * MiB, (share - BASELINE) // 2)
    tcp_buffer = 128 * 1024  # an IPFIX message is at most 64 KiB
    return replace(DEFAULT_LIMITS, state_bytes=state, exporter_bytes=state // 4,
                   session_bytes=state // 8, max_tcp_buffer=tcp_buffer,
                   max_connections=max(16, min(256, state // 4 // tcp_buffer)))
