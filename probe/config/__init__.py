"""Configuration: RFC 6728 JSON (goflowd form or RFC 7951) validated against the YANG modules.

``load(path)`` is the entry point; the loader is imported on first use so that modules which
only need the model (``probe.config.model``) do not pay for yangson.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probe.config.model import Config

__all__ = ["load", "load_data", "load_text", "normalised"]


def load(path: str | Path, *, replay: bool = False, cache: str = "use") -> Config:
    """Read, validate and build a config. ``replay=True`` for ``flowprobe replay -c``: the
    pcap named on the command line is the source, so observation points need none.
    ``cache``: ``use`` (a file validated before is not validated again), ``refresh`` or
    ``off`` (``probe.config.validated``)."""
    from probe.config.loader import load as _load
    return _load(path, replay=replay, cache=cache)


def load_text(text: str, origin: str = "<config>", *, replay: bool = False) -> Config:
    from probe.config.loader import load_text as _load_text
    return _load_text(text, origin, replay=replay)


def load_data(doc: dict[str, Any], origin: str = "<config>", *, replay: bool = False) -> Config:
    from probe.config.loader import load_data as _load_data
    return _load_data(doc, origin, replay=replay)


def normalised(path: str | Path) -> dict[str, Any]:
    from probe.config.loader import normalised as _normalised
    return _normalised(path)
