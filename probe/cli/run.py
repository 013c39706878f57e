"""``flowprobe run -c CONFIG``: run every observation point of a config until done or stopped."""

from __future__ import annotations

import argparse
import logging
import sys

from probe.batching import DEFAULT_BATCH_SIZE
from probe.cli.replay import print_summary


def run(args: argparse.Namespace) -> int:
    from probe.config import load
    from probe.pipeline import Pipeline

    logging.basicConfig(level=logging.INFO, format="flowprobe: %(message)s")
    config = load(args.config)
    stats = Pipeline(config, batch_size=args.batch_size).run()
    print_summary(stats, sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the observation points of a config",
                       description="Meter live interfaces or offline files as configured; "
                                   "offline runs end after every flow is exported, live runs "
                                   "on SIGINT/SIGTERM.")
    p.add_argument("-c", "--config", metavar="CONFIG", required=True)
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N")
    p.set_defaults(func=run)
