"""The project's YANG module must lint clean, as the vendored RFC 6728 modules do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from probe.config.schema import YANG_DIR

YANG = YANG_DIR


def _pyang() -> str:
    beside = Path(sys.executable).parent / "pyang"
    found = str(beside) if beside.exists() else shutil.which("pyang")
    if found is None:
        pytest.skip("pyang is not installed (make install adds it)")
    return found


def test_pyang_strict_reports_nothing() -> None:
    modules = sorted(str(p) for p in YANG.glob("*.yang"))
    assert any(m.endswith("flowprobe.yang") for m in modules)
    res = subprocess.run([_pyang(), "--strict", "-p", str(YANG), *modules], text=True,
                         capture_output=True, timeout=120, check=False)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_yang_library_lists_every_module() -> None:
    # yangson reads only what yang-library.json lists: a module dropped in yang/ but not
    # listed there would be linted yet silently not validated against.
    import json
    lib = json.loads((YANG / "yang-library.json").read_text())
    modules = lib["ietf-yang-library:modules-state"]["module"]
    assert {m["name"] for m in modules} == {p.stem.split("@")[0] for p in YANG.glob("*.yang")}
    for m in modules:
        text = next(YANG.glob(f"{m['name']}*.yang")).read_text()
        assert f"revision {m['revision']}" in text, m["name"]
