"""Configs validated before: their RFC 7951 form, kept so that loading them again skips yangson.

Validating a config file costs about 0.35 s of start-up on every `run -c` or `replay -c`
(importing yangson and parsing the YANG modules, pydantic's check of the built model), more
than the whole metering of a 1M-packet trace takes. The outcome is a pure function of the
document, the replay flag, the YANG modules, flowprobe's config code and the yangson and
pydantic releases, so it is kept under a digest of all of them: a file validated once is
loaded again with its normalised form read back; the semantic checks (under a millisecond) run
on it again, so an entry edited by hand cannot build what they refuse. Any change to the
document, the modules, the code or the libraries changes the digest, and the file is
validated afresh. Only documents that validated are kept: an invalid one is checked in full
every time and fails with the same lines.

Where: ``$FLOWPROBE_CACHE_DIR`` (``off`` or empty: no cache), else
``$XDG_CACHE_HOME/flowprobe``, else ``~/.cache/flowprobe``; entries go in ``configs/``. A
directory not owned by this user, or writable by others, is not used (its entries would be
another user's word on what is valid). At most ``MAX_ENTRIES`` are kept, the least recently
used removed first. Every failure to read or write the cache is silent: it only costs time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ENV = "FLOWPROBE_CACHE_DIR"
MAX_ENTRIES = 256
_FORMAT = b"flowprobe validated config 1\n"
_HERE = Path(__file__).resolve().parent
_CODE_DIRS = (_HERE, _HERE.parent / "ie", _HERE.parent / "yang")  # what validation depends on
_LIBRARIES = ("yangson", "pydantic", "pydantic_core")


def cache_dir() -> Path | None:
    """The directory entries live in, or None when caching is off."""
    where = os.environ.get(ENV)
    if where is not None:
        return None if where.strip() in ("", "off") else Path(where) / "configs"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "flowprobe" / "configs"
    home = os.environ.get("HOME")
    return Path(home) / ".cache" / "flowprobe" / "configs" if home else None


@cache
def _environment_digest() -> bytes:
    """flowprobe's config code, the YANG modules and the library releases, hashed."""
    h = hashlib.sha256(_FORMAT)
    for d in _CODE_DIRS:
        for p in sorted(d.iterdir()):
            if p.is_file() and p.suffix in (".py", ".yang", ".json"):
                h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    for name in _LIBRARIES:  # the installed release, from its dist-info (no import: 0.1 s)
        spec = find_spec(name)
        origin = Path(spec.origin) if spec and spec.origin else None
        site = origin.parent.parent if origin else None
        infos = sorted(e.name for e in os.scandir(site) if e.name.endswith(".dist-info")
                       and e.name.split("-")[0].lower() == name.lower()) if site else []
        h.update(f"{name}={origin}:{','.join(infos)}\n".encode())
    return h.digest()


def _entry(doc: dict[str, Any], replay: bool) -> Path | None:
    where = cache_dir()
    if where is None:
        return None
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    try:
        h = hashlib.sha256(_environment_digest())
    except OSError:  # the package's files cannot be read: no cache, never an error
        return None
    h.update(b"replay\n" if replay else b"run\n")
    h.update(text.encode())
    return where / f"{h.hexdigest()}.json"


def _usable(d: Path) -> bool:
    """Ours alone: owned by this user, writable by nobody else."""
    try:
        st = d.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def lookup(doc: dict[str, Any], replay: bool) -> dict[str, Any] | None:
    """The RFC 7951 form ``doc`` validated to before, or None."""
    entry = _entry(doc, replay)
    if entry is None or not _usable(entry.parent):
        return None
    try:
        st = entry.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return None
        found = json.loads(entry.read_text(encoding="utf-8"))
        os.utime(entry)  # recently used: pruned last
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def store(doc: dict[str, Any], replay: bool, rfc7951: dict[str, Any]) -> None:
    """Keep ``rfc7951`` as what ``doc`` validates to (only after it validated)."""
    entry = _entry(doc, replay)
    if entry is None:
        return
    try:
        text = json.dumps(rfc7951, separators=(",", ":"), allow_nan=False)
        if json.loads(text) != rfc7951:  # a value JSON cannot carry exactly: do not keep it
            return
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _usable(entry.parent):
            return
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, entry)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a full disk leaves no half-written file behind
            raise
        _prune(entry.parent)
    except (OSError, TypeError, ValueError):
        return


def _prune(d: Path) -> None:
    entries = [e for e in os.scandir(d) if e.name.endswith(".json")]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime_ns)
    for e in entries[:len(entries) - MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            os.unlink(e.path)
