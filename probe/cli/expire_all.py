"""``flowprobe expire-all``: end every flow a running probe holds and export it now, as
``softflowctl expire-all``: each ends with flowEndReason 4 (forced end), and messages waiting
to fill up are sent at once."""

from __future__ import annotations

import argparse

from probe.cli.control_client import add_socket_flag


def expire_all(args: argparse.Namespace) -> int:
    from probe.cli.control_client import ask

    n = ask(args, "expire-all")["expired"]
    print(f"{n} flows ended (forced end) and sent to the exporting processes")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expire-all", help="end and export every flow a running probe holds",
                       description="End every flow in a running probe's caches now (flow "
                                   "end reason 4, forced end) and send the records to its "
                                   "exporting processes at once, as `softflowctl "
                                   "expire-all`. The probe keeps running; new packets start "
                                   "new flows.")
    add_socket_flag(p)
    p.set_defaults(func=expire_all)
