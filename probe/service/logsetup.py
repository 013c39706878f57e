"""Logging to stderr, one line per event, for a terminal or for journald.

Under systemd (``JOURNAL_STREAM`` is set) journald stamps every line itself and reads a
``<N>`` syslog priority prefix, so lines carry the priority instead of a timestamp; elsewhere
they start with an ISO 8601 UTC time. Multi-line text (tracebacks, problem lists) is folded onto
one line so a log reader never sees half an event.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                    logging.CRITICAL: 2}


class OneLineFormatter(logging.Formatter):
    def __init__(self, journald: bool, prefix: str = "") -> None:
        super().__init__()
        self.journald = journald
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += " | " + self.formatException(record.exc_info)
        text = self.prefix + " | ".join(line for line in text.splitlines() if line.strip())
        level = record.levelname.lower()
        if self.journald:
            prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
            return f"<{prio}>{level}: {text}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z flowprobe {level}: {text}"


def configure(level: str = "info", stream: TextIO | None = None,
              journald: bool | None = None, prefix: str = "") -> None:
    """Route every logger to stderr at ``level`` (one of ``LEVELS``); ``prefix`` names the
    process (capture workers)."""
    if journald is None:
        journald = bool(os.environ.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(OneLineFormatter(journald, prefix))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
