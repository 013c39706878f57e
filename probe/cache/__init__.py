"""Cache (Metering Process): flow records kept and expired per RFC 6728 cache type."""

from __future__ import annotations

from probe.cache.base import CacheBase, CacheStats, Sink
from probe.cache.permanent import ImmediateCache, PermanentCache
from probe.cache.timeout import TimeoutCache
from probe.config import model

__all__ = ["CacheBase", "CacheStats", "Sink", "build_cache"]


def build_cache(cfg: model.Cache, observation_domain_id: int) -> CacheBase:
    if cfg.kind == "immediateCache":
        return ImmediateCache(cfg, observation_domain_id)
    if cfg.kind == "permanentCache":
        return PermanentCache(cfg, observation_domain_id)
    return TimeoutCache(cfg, observation_domain_id)
