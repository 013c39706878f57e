"""The package as a user installs it: ``python -m build``, the wheel into a fresh virtual
environment in a temporary directory, then flowprobe run from there with no checkout in
sight: ``--version``, ``validate`` on every sample config, ``replay`` of the demo capture,
and the man pages where man(1) finds them.

The build runs on a copy of the source tree (``python -m build`` writes an egg-info beside the
sources), through the sdist, as a release would: a file left out of the sdist is missing from
the wheel too. Dependencies come from the package index (pip's cache makes that quick after
``make install``); a compiled extension is built as part of the wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import probe

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "configs").glob("*.json"))

pytestmark = pytest.mark.slow

# What the demo capture meters to (README, `make demo`)
DEMO_TOTAL = "total: 38 flows, 260 packets, 140762 bytes"


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str], timeout: int = 600
         ) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, text=True,
                         capture_output=True, timeout=timeout, check=False)
    assert res.returncode == 0, f"{cmd}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def _source_copy(dest: Path) -> Path:
    junk = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".ruff_cache", ".hypothesis", ".benchmarks",
                                  "out")
    shutil.copytree(ROOT, dest, ignore=junk)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(wheel, virtual environment, environment for running its commands)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "MANPATH")}
    src = _source_copy(tmp / "src")
    dist = tmp / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, src], cwd=tmp, env=env)
    (wheel,) = dist.glob("flowprobe-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp, env=env)
    _run([venv / "bin" / "pip", "install", "--quiet", wheel], cwd=tmp, env=env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return wheel, venv, env


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A user's directory: their configs and captures, no flowprobe sources."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "pcaps").mkdir()
    shutil.copy(ROOT / "pcaps" / "demo.pcap", tmp_path / "pcaps")
    return tmp_path


def test_wheel_carries_the_yang_modules_the_iana_table_and_the_man_pages(installed) -> None:
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.name for p in (ROOT / "probe" / "yang").iterdir()}
    assert {f"probe/yang/{m}" for m in modules} <= names
    assert "probe/ie/iana.py" in names
    pages = {p.name for p in (ROOT / "man").glob("*.1")}
    version = wheel.name.split("-")[1]
    assert {f"flowprobe-{version}.data/data/share/man/man1/{p}" for p in pages} <= names
    assert not any(n.startswith(("tests/", "tools/", "yang/")) for n in names)


def test_version_is_the_package_version(installed, workdir) -> None:
    wheel, _, env = installed
    res = _run(["flowprobe", "--version"], cwd=workdir, env=env)
    assert res.stdout == f"flowprobe {wheel.name.split('-')[1]}\n"
    assert wheel.name.split("-")[1] == probe.__version__


def test_installed_package_is_the_one_running(installed, workdir) -> None:
    _, venv, env = installed
    res = _run([venv / "bin" / "python", "-c", "import probe, sys; print(probe.__file__); "
                "print(sys.path)"], cwd=workdir, env=env)
    where, path = res.stdout.splitlines()
    assert where.startswith(str(venv)), where
    assert str(ROOT) not in path


@pytest.mark.parametrize("config", SAMPLES, ids=[p.name for p in SAMPLES])
def test_installed_flowprobe_validates_every_sample(installed, workdir, config) -> None:
    _, _, env = installed
    res = _run(["flowprobe", "validate", f"configs/{config.name}"], cwd=workdir, env=env)
    assert res.stdout.startswith(f"configs/{config.name}: valid: "), res.stdout


def test_installed_flowprobe_replays_the_demo_capture(installed, workdir) -> None:
    _, _, env = installed
    res = _run(["flowprobe", "replay", "pcaps/demo.pcap", "--format", "table", "--verify"],
               cwd=workdir, env=env)
    assert DEMO_TOTAL in res.stdout
    assert "verify: OK: the 38 records decoded from IPFIX equal the 38" in res.stderr


def test_installed_flowprobe_still_says_what_is_wrong(installed, workdir) -> None:
    _, _, env = installed
    bad = workdir / "bad.json"
    bad.write_text('{"observationPoint": [{"name": "x", "observationDomainId": -1}]}')
    res = subprocess.run(["flowprobe", "validate", str(bad)], cwd=workdir, env=env, text=True,
                         capture_output=True, timeout=60, check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert re.search(r"observationDomainId: -1 is not a uint32", res.stderr), res.stderr


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db not installed")
def test_man_finds_the_pages_beside_the_installed_command(installed, workdir) -> None:
    """man-db looks in ../share/man of every PATH entry: an activated virtual environment (or
    a pip install --user, --prefix) needs no MANPATH."""
    _, venv, env = installed
    for page in sorted((ROOT / "man").glob("*.1")):
        res = _run(["man", "-w", page.stem], cwd=workdir, env=env)
        assert res.stdout.strip() == str(venv / "share" / "man" / "man1" / page.name)
