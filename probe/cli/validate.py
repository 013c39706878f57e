"""``flowprobe validate CONFIG [--rfc7951]``: check a config without starting anything."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from probe.config import load, normalised


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "validate", help="validate a configuration file",
        description="Validate an RFC 6728 configuration (goflowd or RFC 7951 JSON form) "
                    "against the YANG modules and flowprobe's semantic checks.",
        epilog="A config may hold at most 256 KiB, nest at most 32 levels, and have at most "
               "1024 entries in a list and one cache field per Information Element the meter "
               "fills; beyond that it is refused with one line before it is validated. validate "
               "always checks in full, and keeps the outcome in the validated-config cache "
               "($FLOWPROBE_CACHE_DIR, else $XDG_CACHE_HOME/flowprobe or ~/.cache/flowprobe; "
               "off: none), so `run -c` of the same file skips yangson.")
    p.add_argument("config", metavar="CONFIG", help="configuration file (JSON)")
    p.add_argument("--rfc7951", action="store_true",
                   help="print the normalised RFC 7951 document instead of a summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.rfc7951:
        doc = normalised(args.config)
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    from probe.config.summary import describe

    config = load(args.config, cache="refresh")  # in full, and kept for run -c
    print(f"{args.config}: valid: {describe(config)}")
    return 0
