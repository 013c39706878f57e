"""The man pages: one per command, current with the argparse definitions, clean roff."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from probe.cli import COMMANDS, build_parser
from tools import manpages

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man"


def test_committed_pages_are_what_make_man_writes(tmp_path: Path) -> None:
    manpages.main([str(tmp_path)])
    written = {p.name: p.read_text() for p in tmp_path.glob("*.1")}
    committed = {p.name: p.read_text() for p in MAN.glob("*.1")}
    assert written.keys() == committed.keys(), "pages added or removed: run `make man`"
    for name, text in written.items():
        assert committed[name] == text, f"man/{name} is stale: run `make man` and commit it"


def test_one_page_per_command() -> None:
    assert {p.name for p in MAN.glob("*.1")} == {"flowprobe.1", *(f"flowprobe-{c}.1"
                                                                  for c in COMMANDS)}


def test_each_page_documents_every_option_of_its_command() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command, cmd_parser in sub.choices.items():  # type: ignore[attr-defined]
        page = (MAN / f"flowprobe-{command}.1").read_text().replace(r"\-", "-")
        assert f'.TH FLOWPROBE-{command.upper()} "1"' in page
        for action in cmd_parser._actions:
            if action.dest == "help":  # every command has -h; a page need not say so
                continue
            for flag in action.option_strings:
                assert flag in page, (command, flag)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
@pytest.mark.parametrize("page", sorted(p.name for p in MAN.glob("*.1")))
def test_page_renders_without_warnings(page: str) -> None:
    res = subprocess.run(["groff", "-man", "-ww", "-z", str(MAN / page)], capture_output=True,
                         text=True, timeout=30, check=False)
    assert res.returncode == 0 and res.stderr == "", res.stderr
