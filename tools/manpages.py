"""Write flowprobe's man pages from its argparse definitions, one page per command.

    python -m tools.manpages [OUTDIR]        (what ``make man`` runs; OUTDIR defaults to man/)

``flowprobe(1)`` lists the commands; ``flowprobe-run(1)``, ``flowprobe-replay(1)`` … document
each one's options, from the same parsers ``--help`` prints, through argparse-manpage. The
pages are committed (like ``probe/ie/iana.py``): the wheel installs them under
``share/man/man1``, and ``tests/cli/test_man.py`` fails when they differ from what this writes,
so a changed option cannot leave its page behind. Nothing in them depends on the day or the
machine they were written on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from argparse_manpage.manpage import Manpage

from probe import __version__
from probe.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
SEE_ALSO_TITLE = "SEE ALSO"


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-commands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _page(parser: argparse.ArgumentParser, name: str, summary: str, others: list[str]) -> str:
    page = Manpage(parser)
    page.prog = name
    page.description = summary
    page.source = f"flowprobe {__version__}"
    page.manual = "flowprobe manual"
    page.date = ""  # reproducible: the version says which flowprobe it describes
    text = str(page)
    see_also = ", ".join(rf"\fB{o}\fR(1)" for o in others if o != name)
    return f'{text.rstrip()}\n.SH "{SEE_ALSO_TITLE}"\n{see_also}\n'


def pages() -> dict[str, str]:
    """File name -> roff text of every page."""
    # argparse wraps text to the terminal's width (COLUMNS): fix it, so the pages are the same
    # wherever they are written
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        return _pages()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _pages() -> dict[str, str]:
    top = build_parser()
    commands = _commands(top)
    names = ["flowprobe", *(f"flowprobe-{c}" for c in commands)]
    out = {"flowprobe.1": _page(top, "flowprobe", top.description or "flowprobe", names)}
    helps = {a.dest: a.help for a in _subparser_actions(top)}
    for command, sub in commands.items():
        summary = helps.get(command) or sub.description or command
        out[f"flowprobe-{command}.1"] = _page(sub, f"flowprobe-{command}", summary, names)
    return out


def _subparser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action._choices_actions)
    return []


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    outdir = Path(args[0]) if args else ROOT / "man"
    outdir.mkdir(parents=True, exist_ok=True)
    for name in list(outdir.glob("flowprobe*.1")):
        name.unlink()  # a removed command loses its page
    for name, text in pages().items():
        (outdir / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
