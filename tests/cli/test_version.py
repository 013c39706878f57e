"""``flowprobe --version`` says the version pip installed (package metadata)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import probe


def test_version_is_the_installed_package_version() -> None:
    res = subprocess.run([sys.executable, "-m", "probe", "--version"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0
    assert res.stdout == f"flowprobe {version('flowprobe')}\n"
    assert version("flowprobe") == probe.__version__  # one version, written once
