"""The default transport: formatted flows appended to a file or stdout, flushed per batch."""

from __future__ import annotations

import sys
from typing import BinaryIO

from probe.errors import UserError


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
            self.out.write(chunk)
            self.out.flush()

    def close(self) -> None:
        self.out.flush()
        if self.path is not None:
            self.out.close()

    def summary(self) -> str | None:
        return None
