"""``flowprobe send-templates``: a running probe sends its Templates again now, as
``softflowctl send-template``, for a collector that restarted and lost them (over UDP a
collector otherwise waits for the next refresh, templateRefreshTimeout: 600 s by default)."""

from __future__ import annotations

import argparse

from probe.cli.control_client import add_socket_flag


def send_templates(args: argparse.Namespace) -> int:
    from probe.cli.control_client import ask

    answer = ask(args, "send-templates")["templates"]
    for ep, dests in answer.items():
        for dest, what in dests.items():
            print(f"exporting process {ep}, destination {dest}: {what}")
    if not answer:
        print("no exporting process has started yet (no packet metered)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("send-templates", help="make a running probe send its templates now",
                       description="Every UDP destination of a running probe sends its "
                                   "Templates and Options Templates again now, instead of at "
                                   "the next refresh, as `softflowctl send-template`. Over "
                                   "TCP a session sends them once, when it connects; NetFlow "
                                   "v5 has none. Prints what each destination did.")
    add_socket_flag(p)
    p.set_defaults(func=send_templates)
