"""Bounds on everything an exporter (or an attacker posing as one) can make the collector keep.

The collector listens on a network port, so memory must not grow with what it is sent. Each
bound is counted when hit (``CollectStats.malformed``), never an exception. Worst case with the
defaults: templates hold interned field specifiers, their names and their wire bytes, at most
``max_template_fields`` fields in all (~40 bytes a field: ~10 MB); held data sets at most
``max_held_bytes`` (8 MiB); TCP buffers at most ``max_connections`` x ``max_tcp_buffer``
(256 x 256 KiB = 64 MiB, only if that many peers each hold a partial message); per-domain
sequence/sampling state at most sessions x domains small objects. The fuzz test measures the
peak under smaller limits (tests/collect/test_fuzz.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = 1024  # transport sessions (UDP exporter address:port, TCP connection); LRU
    max_templates_per_session: int = 1024  # new templates beyond this are refused
    max_fields_per_template: int = 512  # a template with more fields is rejected
    max_template_fields: int = 262_144  # all templates of all sessions together, in fields
    max_domains_per_session: int = 256  # sequence / sampling / init-time state; LRU
    max_samplers_per_domain: int = 256  # sampler / selector id -> interval table; LRU
    max_held_per_session: int = 64  # data sets waiting for their template
    max_held_bytes: int = 8 * 1024 * 1024  # all held data sets together
    held_max_age_s: float = 30.0  # held data sets older than this are dropped
    template_lifetime_s: float = 1800.0  # UDP templates not re-sent for this long are dropped
    max_connections: int = 256  # concurrent TCP connections; more are refused
    max_tcp_buffer: int = 256 * 1024  # bytes buffered on one TCP connection without a message


DEFAULT_LIMITS = Limits()
