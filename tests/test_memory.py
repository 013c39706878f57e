"""replay's malloc tuning takes effect on glibc and leaves nothing to fail elsewhere."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from probe.memory import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc mallopt only")
def test_glibc_accepts_the_thresholds() -> None:
    # in a child process, so this test process keeps glibc's defaults
    code = "from probe.memory import keep_freed_memory as k; raise SystemExit(0 if k() else 1)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_without_mallopt_it_declines(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    class NoLibc:
        def __init__(self, name: object) -> None:
            raise OSError("no C library here")

    monkeypatch.setattr(ctypes, "CDLL", NoLibc)
    assert keep_freed_memory() is False
