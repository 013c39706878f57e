"""Session-wide: the validated-config cache goes to a directory of the test run's own.

Tests (and the commands they start, which inherit the environment) must not read or fill the
user's ``~/.cache/flowprobe``; with a private directory they still run the cache's paths, a
config loaded twice in a test being read back the second time.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from probe.config.validated import ENV

_made: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    _made.append(tempfile.mkdtemp(prefix="flowprobe-test-cache-"))
    os.environ[ENV] = _made[-1]


def pytest_unconfigure(config: pytest.Config) -> None:
    for d in _made:
        shutil.rmtree(d, ignore_errors=True)
