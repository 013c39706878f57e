"""``flowprobe flows``: the flows a running probe holds now, as ``softflowctl dump-flows``.

Every cached flow with its key, counters, age (since first seen), idle time (since last seen)
and rate, biggest first; ``--json`` writes JSON lines with the collector's field names, so a
listing compares directly with what ``flowprobe collect`` receives once the flows end.
"""

from __future__ import annotations

import argparse

from probe.cli.control_client import add_socket_flag

SORTS = ("bytes", "packets", "rate", "age")  # probe.service.flows.SORTS


def _limit(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number (0: all)")
    return int(text)


def flows(args: argparse.Namespace) -> int:
    import json
    import sys

    from probe.cli.control_client import ask
    from probe.output import CACHED_HEAD, CACHED_RIGHT, cached_row, table_text

    doc = ask(args, "flows", sort=args.sort, limit=args.limit)["flows"]
    shown, total = doc["flows"], doc["total"]
    if args.json:
        sys.stdout.write("".join(json.dumps(f, separators=(",", ":")) + "\n" for f in shown))
        if len(shown) < total:
            print(f"flows: {len(shown)} of {total} cached flows shown", file=sys.stderr)
        return 0
    by = "oldest first" if args.sort == "age" else f"largest {args.sort} first"
    sys.stdout.write(table_text(CACHED_HEAD, [cached_row(f) for f in shown], CACHED_RIGHT))
    sys.stdout.write(f"{total} flows cached, {len(shown)} shown, {by}\n")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flows", help="list the flows a running probe holds now",
                       description="Ask a running probe (`flowprobe run`, or a replay started "
                                   "with --control-socket) for every flow in its caches: key, "
                                   "packets, bytes, age since first seen, idle time since "
                                   "last seen and rate (bits per second since first seen), "
                                   "as `softflowctl dump-flows` lists them. The flows stay "
                                   "cached; `flowprobe expire-all` ends them.")
    add_socket_flag(p)
    p.add_argument("--json", action="store_true",
                   help="JSON lines, one flow each, with the collector's field names")
    p.add_argument("--sort", choices=SORTS, default="bytes",
                   help="largest bytes (default), packets or rate first, or oldest first (age)")
    p.add_argument("-n", "--limit", type=_limit, default=0, metavar="N",
                   help="only the first N flows (default 0: all; a large cache's full "
                        "listing takes the probe's CPU a while)")
    p.set_defaults(func=flows)
