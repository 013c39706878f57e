"""``--pid-file``: written once the probe runs, removed when it exits.

A file naming a live process means another probe runs with the same pid file: refuse to start
rather than have two probes and one pid file. A stale file (its process is gone) is replaced.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from probe.errors import UserError

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PidFile:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._written = False

    def check(self) -> None:
        """Before starting: fail if another live process owns the file."""
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UserError(f"--pid-file {self.path}: cannot read: {exc.strerror}") from None
        if text.isdigit() and int(text) != os.getpid() and _alive(int(text)):
            raise UserError(f"--pid-file {self.path}: process {text} is running with it")

    def write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            tmp.write_text(f"{os.getpid()}\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise UserError(f"--pid-file {self.path}: cannot write: {exc.strerror}") from None
        self._written = True

    def remove(self) -> None:
        if not self._written:
            return
        try:
            if self.path.read_text().strip() == str(os.getpid()):
                self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("pid file %s: cannot remove: %s", self.path, exc.strerror)
        self._written = False
