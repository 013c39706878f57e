"""The one way into a Config: read, normalise to RFC 7951, validate (YANG, then semantics),
build. Each stage reports every problem it finds; a later stage runs only on a document the
earlier ones accepted, so one mistake is not reported again in other words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe.config import build, normalise, references, semantic, source, yang_check
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
    rfc7951, _form, problems = normalise.to_rfc7951(doc)
    _fail(origin, problems)
    _fail(origin, references.check(rfc7951))
    _fail(origin, yang_check.validate(rfc7951))
    _fail(origin, semantic.check(rfc7951, replay=replay))
    return rfc7951


def load_data(doc: dict[str, Any], origin: str = "<config>", *, replay: bool = False) -> Config:
    return check_types(build.build(check_data(doc, origin, replay=replay), origin))


def load_text(text: str, origin: str = "<config>", *, replay: bool = False) -> Config:
    return load_data(source.parse_text(text, origin), origin, replay=replay)


def load(path: str | Path, *, replay: bool = False) -> Config:
    """Load and validate a config file; every problem is a UserError line naming the file."""
    return load_data(source.read_file(path), str(path), replay=replay)


def normalised(path: str | Path) -> dict[str, Any]:
    """The validated RFC 7951 document of a config file."""
    return check_data(source.read_file(path), str(path))
