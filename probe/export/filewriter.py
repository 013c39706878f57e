"""The fileWriter destination (RFC 6728 §4.5, RFC 5655): IPFIX Messages into an IPFIX File.

An IPFIX File is the messages of one Transport Session written one after another, so the file
is a transport like TCP for the session above it: reliable (templates once, no refresh), in
order, one sequence number space per observation domain. What differs:

- every Template the Exporting Process can use is written first, before any data, together
  with the options (``DestinationRuntime.announce``): a reader that looks at the head of the
  file learns every record layout in it;
- nothing is withdrawn at the end: a file ends, it does not close a session that a reader
  could hold on to;
- each message's Export Time is when the Exporting Process wrote it, on the probe's clock
  (the packet clock of an offline replay, as for every other destination), rounded up to the
  second: never before the end of a record it carries, never decreasing through the file;
- messages are as large as ``maxMessageSize`` allows (default 65535, the most the length field
  can state): a file has no path MTU.

A write that fails (a full disk) ends the file: what could not be written is counted as not
sent, with the reason, as for a collector that went away.

A reload (SIGHUP) ends the session and the next config starts a new one: the file the old
config wrote is complete, so it is kept as ``PATH.1`` (``.2``, ... when taken) and the new
session gets ``PATH`` from its start. Appending would put a second session's sequence numbers,
restarting at 0, into one file, which readers take for lost messages.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os

from probe.config.model import Destination
from probe.errors import UserError

log = logging.getLogger(__name__)

# (device, inode) of every file this process wrote: opening one of them again is a new session
_WRITTEN: set[tuple[int, int]] = set()


def _keep_previous(path: str) -> None:
    """Move aside a file an earlier session of this process wrote at ``path``."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if (st.st_dev, st.st_ino) not in _WRITTEN:
        return  # someone else's file (or an earlier run's): overwritten, as a replay would
    n = 1
    while os.path.lexists(f"{path}.{n}"):
        n += 1
    os.rename(path, f"{path}.{n}")
    log.info("%s: the previous session's file is kept as %s.%d", path, path, n)


class FileTransport:
    reliable = True
    is_file = True

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self.path = dest.file_path or ""
        self.max_size = dest.max_message_size
        self.last_error: str | None = None
        try:
            _keep_previous(self.path)
            # Unbuffered: a message is written (or fails, counted) when it is sent, so what the
            # counters call written is in the file. Messages are large: few writes.
            self._file: io.FileIO | None = open(self.path, "wb", buffering=0)  # noqa: SIM115
            st = os.fstat(self._file.fileno())
            _WRITTEN.add((st.st_dev, st.st_ino))
        except OSError as exc:
            raise UserError(f"export destination {dest.name}: cannot write {self.path}: "
                            f"{exc.strerror or exc}") from None
        self.written = 0  # bytes in the file

    @property
    def up(self) -> bool:
        return self._file is not None

    def poll(self) -> bool:
        return False  # one file, one session: nothing to re-establish

    def send(self, msg: bytes) -> bool:
        if self._file is None:
            return False
        try:
            view = memoryview(msg)
            while view:
                view = view[self._file.write(view):]
        except OSError as exc:
            self._failed(exc)
            return False
        self.written += len(msg)
        return True

    def settled(self) -> int:
        """All of it: what was written is in the file (no peer to lose it)."""
        return self.written

    def finish(self, deadline: float) -> bool:
        """The end of the file needs no one's confirmation."""
        return self._file is not None

    def _failed(self, exc: OSError) -> None:
        self.last_error = f"{self.path}: {exc.strerror or exc}"
        log.error("export destination %s: cannot write %s", self.dest.name, self.last_error)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as exc:
            self._failed(exc)
        self._file = None
