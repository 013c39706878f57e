"""``flowprobe stats``: ask a running probe for its counters over its control socket.

Prints what ``softflowctl statistics`` shows and more (libpcap and interface drops, per-selector
packetsObserved/packetsDropped, flows by end reason, per-destination export counters); ``--json``
prints the document itself, ``--yang`` the RFC 6728 operational state. Exit 2 with one line when
no probe answers.
"""

from __future__ import annotations

import argparse


def stats(args: argparse.Namespace) -> int:
    import json
    import sys

    from probe.service.control import default_path, request
    from probe.service.stats import format_text

    path = args.control_socket or default_path()
    doc = request(path, "stats")["stats"]
    if args.yang:
        return stats_yang(doc, request(path, "config")["config"])
    if args.json:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(doc))
    return 0


def stats_yang(doc: dict, config: dict) -> int:
    """``--yang``: the RFC 6728 operational state (``probe.cli.stats_yang``) of the probe whose
    statistics are ``doc`` and whose running config is ``config``."""
    import json
    import sys

    from probe.cli.stats_yang import yang_document

    json.dump(yang_document(doc, config), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="show a running probe's statistics",
                       description="Ask a running `flowprobe run` over its control socket for "
                                   "packets received and dropped, flows and export counters.")
    p.add_argument("--control-socket", metavar="PATH",
                   help="the probe's control socket (default as for `flowprobe run`)")
    p.add_argument("--json", action="store_true", help="print the JSON document")
    p.add_argument("--yang", action="store_true",
                   help="print the running config with RFC 6728's state (config false) nodes, "
                        "RFC 7951 JSON: the probe's operational datastore")
    p.set_defaults(func=stats)
