"""What the commands that talk to a running probe share: the ``--control-socket`` flag and the
request. ``flowprobe flows``, ``expire-all``, ``send-templates`` and ``top`` ask a ``flowprobe
run`` (or a replay or offline run started with ``--control-socket``) over its unix socket;
with no probe there, one line and exit 2. Only argparse is imported at the top."""

from __future__ import annotations

import argparse
from typing import Any


def add_socket_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control-socket", metavar="PATH",
                   help="the probe's control socket (default as for `flowprobe run`; a "
                        "replay answers on the one its --control-socket names)")


def ask(args: argparse.Namespace, command: str, **params: Any) -> dict[str, Any]:
    """The probe's answer (a UserError, exit 2, when none answers or it refuses)."""
    from probe.service.control import default_path, request

    return request(args.control_socket or default_path(), command, **params)
