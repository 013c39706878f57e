"""The default transport: formatted flows appended to a file or stdout, flushed per batch."""

from __future__ import annotations

import signal
import sys
from typing import BinaryIO

from probe.errors import UserError

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class FileTransport:
    """Bytes to a file (``path``) or to stdout (``None``); what arrives in one batch is
    written with one call and flushed, so a reader of the file sees whole lines."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        if path is None:
            self.out: BinaryIO = sys.stdout.buffer
        else:
            try:
                self.out = open(path, "wb")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise UserError(f"--output {path}: {exc.strerror}") from None

    def write(self, chunk: bytes) -> None:
        if chunk:
            # SIGINT/SIGTERM are held while the bytes go out: CPython 3.11 drops part of a
            # large write to a full pipe that a signal interrupts (``collect | slow-reader``
            # lost kilobytes of JSON lines at Ctrl-C); they are delivered once it is done.
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                self.out.write(chunk)
                self.out.flush()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def close(self) -> None:
        self.out.flush()
        if self.path is not None:
            self.out.close()

    def summary(self) -> str | None:
        return None
