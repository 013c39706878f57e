"""Pid file life cycle and the one-line log format (journald or ISO time)."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
from pathlib import Path

import pytest

from probe.errors import UserError
from probe.service.logsetup import configure
from probe.service.pidfile import PidFile


def test_pid_file_written_then_removed(tmp_path: Path) -> None:
    pf = PidFile(tmp_path / "fp.pid")
    pf.check()
    pf.write()
    assert (tmp_path / "fp.pid").read_text() == f"{os.getpid()}\n"
    pf.remove()
    assert not (tmp_path / "fp.pid").exists()


def test_pid_file_of_a_running_process_refuses_a_stale_one_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "fp.pid"
    other = subprocess.Popen(["sleep", "30"])
    try:
        path.write_text(f"{other.pid}\n")
        with pytest.raises(UserError, match=f"process {other.pid} is running with it"):
            PidFile(path).check()
    finally:
        other.kill()
        other.wait()
    PidFile(path).check()  # that process is gone: the file is stale
    pf = PidFile(path)
    pf.write()
    assert path.read_text().strip() == str(os.getpid())
    pf.remove()


def test_pid_file_in_a_missing_directory_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot write"):
        PidFile(tmp_path / "no" / "fp.pid").write()


def _log_line(journald: bool) -> str:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure("info", stream=out, journald=journald)
    try:
        log = logging.getLogger("probe.test")
        log.debug("not shown")
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            log.exception("reload failed:\n  two problems")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    return out.getvalue()


def test_journald_lines_carry_priority_not_time() -> None:
    text = _log_line(journald=True)
    assert text.count("\n") == 1  # one event, one line
    assert text.startswith("<3>error: reload failed: |   two problems | Traceback")
    assert "ValueError: bad | thing" in text


def test_terminal_lines_start_with_iso_time() -> None:
    text = _log_line(journald=False)
    assert text.count("\n") == 1
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z flowprobe error: reload failed",
                    text)
