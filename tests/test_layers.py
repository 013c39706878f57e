"""The layer contract (pyproject.toml, README "Architecture") is checked by import-linter in
``make test``; here it is shown to hold on the tree and to fail on a copy with one import that
breaks it: upward across layers, a cycle through a function-level import, or a capture source
opened outside ``probe.capture``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the ``probe`` package found in ``tree`` (its own pyproject.toml)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache", "--no-logo"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "probe", tmp_path / "probe",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add(tree: Path, module: str, code: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + "\n\n" + code + "\n")


def test_the_tree_keeps_every_contract(copy: Path) -> None:
    r = _lint(copy)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 kept, 0 broken" in r.stdout


BAD_IMPORTS = {
    # The capture box reaching up into the cache, even lazily inside a function.
    "upward": ("probe.capture.point",
               "def _cache():\n    from probe.cache import CacheBase\n    return CacheBase",
               ["Layers: each box imports only the boxes below it BROKEN",
                "probe.capture is not allowed to import probe.cache",
                "probe.capture.point -> probe.cache"]),
    # collect.decoder imports collect.records; records importing decoder back, lazily, is a
    # cycle inside one box, which no layer rule sees.
    "cycle": ("probe.collect.records",
              "def _decoder():\n    from probe.collect import decoder\n    return decoder",
              ["Layers: each box imports only the boxes below it KEPT",
               "No import cycles, at any depth BROKEN",
               "No cycles are allowed in probe.collect"]),
    # The pipeline may import capture, but not open a file behind capture.open's back.
    "around capture.open": ("probe.pipeline",
                            "from probe.capture.source import open_offline  # noqa",
                            ["One way into capture: only probe.capture opens sources BROKEN",
                             "probe.pipeline -> probe.capture.source"]),
}


@pytest.mark.parametrize("case", list(BAD_IMPORTS))
def test_one_bad_import_breaks_the_contract(copy: Path, case: str) -> None:
    module, code, said = BAD_IMPORTS[case]
    _add(copy, module, code)
    r = _lint(copy)
    assert r.returncode != 0
    for line in said:
        assert line in r.stdout, r.stdout


def test_a_new_module_must_be_given_a_layer(copy: Path) -> None:
    (copy / "probe" / "stray.py").write_text('"""Not in the contract."""\n')
    r = _lint(copy)
    assert r.returncode != 0
    assert "probe.stray" in r.stdout


def test_no_module_imports_itself_back() -> None:
    """Module by module, function-level imports included: nothing ``probe`` imports leads back
    to the importer (the contract above compares siblings; this also covers a package and the
    modules inside it)."""
    import grimp

    graph = grimp.build_graph("probe", cache_dir=None)
    cycles = [(m, n) for m in sorted(graph.modules)
              for n in sorted(graph.find_modules_directly_imported_by(m))
              if graph.chain_exists(importer=n, imported=m)]
    assert cycles == []
