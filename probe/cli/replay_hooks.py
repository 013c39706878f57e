"""What a running replay offers besides its flows: a control socket (``--control-socket``),
so ``flowprobe flows``, ``stats`` and ``top`` can watch it. Shared by both forms of replay
(with ``--export`` and without)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Hooks = dict[str, Callable[..., None] | None]


@contextmanager
def replay_hooks(args: argparse.Namespace) -> Iterator[Hooks]:
    """The pipeline hooks of this replay, each given the pipeline: ``on_open`` (the captures
    are open) and ``on_batch``; the control socket, if asked for, opens with the captures and
    is removed on the way out."""
    control = None
    if args.control_socket:
        from probe.service.commands import ReplayControl

        control = ReplayControl(args.control_socket, args.pcap)
    hooks: Hooks = {"on_open": control.opened if control else None, "on_batch": None}
    try:
        yield hooks
    finally:
        if control is not None:
            control.close()


def add_control_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control-socket", metavar="PATH",
                   help="answer `flowprobe flows`, `stats`, `top`, `expire-all` and "
                        "`send-templates` on this unix socket while the replay runs")

