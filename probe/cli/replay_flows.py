"""``flowprobe replay PCAP`` without ``--export``: show (and ``--verify``) the flows as the
bundled collector decodes them from the probe's own export over loopback."""

from __future__ import annotations

import argparse
import sys

from probe.cli.replay_config import loopback_config
from probe.cli.replay_hooks import replay_hooks
from probe.collect import Record
from probe.loopback import run_loopback, verify
from probe.memory import starting_up
from probe.output import (
    EXPORT_PROTOCOLS,
    JsonWriter,
    TableWriter,
    print_loopback_summary,
    print_summary,
)


def show_flows(args: argparse.Namespace) -> int:
    with starting_up():
        version, make_config = loopback_config(args)
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    # A table is for people: sorted by first seen, printed at the end. JSON lines stream in
    # arrival order.
    writer = TableWriter(sys.stdout) if fmt == "table" else JsonWriter(sys.stdout)

    def on_records(decoded: list[Record]) -> None:
        writer.write(decoded)

    with replay_hooks(args) as hooks:
        res = run_loopback(make_config, version, on_records=on_records, keep=args.verify,
                           batch_size=args.batch_size, **hooks)
    writer.close()
    sys.stdout.flush()
    if not args.quiet:
        print_summary(res.pipeline, sys.stderr)
        print_loopback_summary(res, sys.stderr)
    status = 0
    lost = res.sent_records - res.collect.records
    if lost or res.dropped or res.collect.lost_records or res.collect.lost_packets:
        print(f"flowprobe replay: the collector decoded {res.collect.records} of the "
              f"{res.sent_records + res.dropped} records exported over loopback "
              f"({res.dropped} not sent, sequence gaps {res.collect.lost_records} records, "
              f"{res.collect.lost_packets} v9 packets)", file=sys.stderr)
        status = 1
    if args.verify:
        verdict = verify(res.expected, res.decoded, version)
        print(verdict.line(EXPORT_PROTOCOLS[version]), file=sys.stderr)
        for d in verdict.differences:
            print(d, file=sys.stderr)
        if not verdict.ok:
            status = 1
    return status
