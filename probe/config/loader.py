"""The one way into a Config: read, normalise to RFC 7951, validate (YANG, then semantics),
build. Each stage reports every problem it finds; a later stage runs only on a document the
earlier ones accepted, so one mistake is not reported again in other words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe.config import build, semantic, source, validated
from probe.config.model import Config, check_types
from probe.errors import UserError


def _fail(origin: str, problems: list[tuple[str, str]]) -> None:
    if problems:
        raise UserError(*(f"{origin}: {path}: {msg}" for path, msg in problems))


def check_data(doc: dict[str, Any], origin: str, *, replay: bool = False) -> dict[str, Any]:
    """The validated RFC 7951 form of a parsed config (goflowd or RFC 7951 form).

    ``replay``: the packets come from ``flowprobe replay``'s command line, so observation
    points may leave out ifName and offlineFile.
    """
    # yangson (0.1 s to import, 0.2 s to parse the modules) only when a document is checked
    from probe.config import normalise, references, yang_check

    rfc7951, _form, problems = normalise.to_rfc7951(doc)
    _fail(origin, problems)
    _fail(origin, references.check(rfc7951))
    _fail(origin, yang_check.validate(rfc7951))
    _fail(origin, semantic.check(rfc7951, replay=replay))
    return rfc7951


def load_data(doc: dict[str, Any], origin: str = "<config>", *, replay: bool = False,
              cache: str = "off") -> Config:
    """The built config of a parsed document.

    ``cache`` (``probe.config.validated``): ``"use"`` takes a document validated before as
    valid, reading its normalised form back (only the semantic checks run again), and keeps
    what it validates; ``"refresh"`` validates in full and keeps the outcome; ``"off"``
    neither reads nor writes.
    """
    if cache == "use" and (known := validated.lookup(doc, replay)) is not None:
        _fail(origin, semantic.check(known, replay=replay))
        return build.build(known, origin)
    rfc7951 = check_data(doc, origin, replay=replay)
    config = check_types(build.build(rfc7951, origin))
    if cache != "off":
        validated.store(doc, replay, rfc7951)
    return config


def load_text(text: str, origin: str = "<config>", *, replay: bool = False) -> Config:
    return load_data(source.parse_text(text, origin), origin, replay=replay)


def load(path: str | Path, *, replay: bool = False, cache: str = "use") -> Config:
    """Load and validate a config file; every problem is a UserError line naming the file.
    ``cache`` as for ``load_data``: ``flowprobe validate`` refreshes, the rest use it."""
    return load_data(source.read_file(path), str(path), replay=replay, cache=cache)


def normalised(path: str | Path) -> dict[str, Any]:
    """The validated RFC 7951 document of a config file."""
    return check_data(source.read_file(path), str(path))
