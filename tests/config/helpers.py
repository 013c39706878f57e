"""Shared by the config tests: sample documents and running ``flowprobe validate`` in-process."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from probe.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
SAMPLES = sorted(CONFIGS.glob("*.json"))


def sample(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((CONFIGS / name).read_text()))


def with_second_cache(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with a second cache, fed by a sampling selection process of the same
    observation point and exporting to the same exporting process as the first."""
    cache2 = copy.deepcopy(doc["cache"][0])
    cache2["name"] = "Second cache"
    doc["cache"].append(cache2)
    doc["selectionProcess"].append({"name": "Sampled", "selector": [
        {"name": "1 of 10", "sampCountBased": {"packetInterval": 1, "packetSpace": 9}}],
        "cache": "Second cache"})
    doc["observationPoint"][0]["selectionProcess"].append("Sampled")
    return doc


def write(tmp_path: Path, doc: Any, name: str = "cfg.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["validate", *args])
    out = capsys.readouterr()
    return status, out.out, out.err
