"""What a running replay offers besides its flows: a progress line on a terminal, and a control
socket (``--control-socket``) so ``flowprobe flows``, ``stats`` and ``top`` can watch it.
Shared by both forms of replay (with ``--export`` and without)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Hooks = dict[str, Callable[..., None] | None]


@contextmanager
def replay_hooks(args: argparse.Namespace) -> Iterator[Hooks]:
    """The pipeline hooks of this replay, each given the pipeline: ``on_open`` (the captures
    are open) and ``on_batch``; the control socket, if asked for, opens with the captures and
    is removed on the way out."""
    control = progress = None
    if args.control_socket:
        from probe.service.commands import ReplayControl

        control = ReplayControl(args.control_socket, args.pcap)
    if _progress_wanted(args):
        from probe.output import ProgressLine

        progress = ProgressLine(sys.stderr)
    hooks: Hooks = {"on_open": control.opened if control else None, "on_batch": progress}
    try:
        yield hooks
    finally:
        if progress is not None:
            progress.clear()
        if control is not None:
            control.close()


def _progress_wanted(args: argparse.Namespace) -> bool:
    """On a terminal only (piped output has no progress line), not with -q, and not when the
    flows stream as JSON lines to the same terminal (they would break the line up)."""
    streamed = args.export is None and args.format == "json" and sys.stdout.isatty()
    return sys.stderr.isatty() and not args.quiet and not streamed


def add_control_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control-socket", metavar="PATH",
                   help="answer `flowprobe flows`, `stats`, `top`, `expire-all` and "
                        "`send-templates` on this unix socket while the replay runs")

