"""``flowprobe replay PCAP``: meter a capture file with the built-in or a given config.

With ``--export`` the records go to that collector and the metering summary is printed. Without
it the probe exports to the bundled collector in this same process over loopback and prints the
flows the collector decoded (``probe.loopback``), then the summary on stderr.
"""

from __future__ import annotations

import argparse
import sys

from probe.batching import DEFAULT_BATCH_SIZE
from probe.cli.meter_flags import add_meter_flags, meter_group, refuse_with_config
from probe.cli.replay_hooks import add_control_flag
from probe.cli.run import add_rate_option
from probe.errors import UserError

# The pipeline, the config model and the output formats load only when a command runs:
# ``flowprobe --help`` builds every sub-command's parser.


def replay(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    refuse_with_config("replay", args)
    if args.print_config:
        if args.export is None:
            raise UserError("flowprobe replay: --print-config needs --export URL: without it "
                            "replay sends to its own collector, which a config file cannot name")
        import os

        from probe.cli.meter_flags import print_config
        from probe.cli.replay_config import build_config
        from probe.config.pacing import paced

        args.pcap = os.path.abspath(args.pcap)  # the file is read from wherever it is run
        return print_config(paced(build_config(args), args.rate))  # as the replay would run
    if args.export is None:
        if args.rate is not None:
            raise UserError("--rate: only with --export (the in-process collector paces the "
                            "exporter itself)")
        from probe.cli.replay_flows import show_flows

        return show_flows(args)
    for flag, given in (("--verify", args.verify), ("--format", args.format)):
        if given:
            raise UserError(f"{flag}: only without --export (the flows are shown by the "
                            "in-process collector)")
    from probe.cli.replay_hooks import replay_hooks
    from probe.memory import starting_up

    with replay_hooks(args) as hooks:
        with starting_up():
            from probe.cli.replay_config import build_config
            from probe.config.pacing import paced
            from probe.pipeline import Pipeline

            config = paced(build_config(args), args.rate)
            on_open = hooks["on_open"]
            pipeline = Pipeline(config, batch_size=args.batch_size,
                                on_open=(lambda: on_open(pipeline)) if on_open else None,
                                on_batch=hooks["on_batch"])
        stats = pipeline.run()
    if not args.quiet:
        from probe.output import print_exports, print_summary

        print_summary(stats, sys.stdout)
        print_exports(config, pipeline.export_stats(), sys.stdout)
    return 0


_EPILOG = """\
Without --export the probe exports to flowprobe's own collector, started in this process on
127.0.0.1 (UDP, a free port), and the flows it decodes are printed: a table on a terminal,
JSON lines (goflow2 field names) when piped or with --format json. The metering summary
(packets read, decoded, ignored by reason; flows created and expired by reason; records sent
and decoded) follows on stderr; -q leaves it out. If the collector decoded fewer records than
were sent, replay says so and exits 1.

With -c, the observation points read PCAP and the caches export to the in-process collector,
in the version of the config's destinations unless --version is given; the configured
destinations are not contacted (use `flowprobe run -c` or --export for that).

--verify also compares every record the collector decoded with the record the cache expired,
field by field, and the counts; it prints one line on stderr and exits 1 on any difference.
NetFlow v5 cannot carry IPv6 flows: --version 5 --verify compares the IPv4 records and says
how many IPv6 records were left out.

With --export URL the records go there instead and the summary is printed on stdout, ending
with one line per destination: what was sent, and what the transport could confirm. UDP
cannot: a replay sends to a UDP destination at 5 MB/s at most, so that a collector with a
default socket buffer keeps up (--rate changes it, --rate 0 sends unpaced). Over TCP the
records a collector that crashed may not have stored are sent again when it is back, and
counted.

With --control-socket PATH the replay answers on that unix socket while it runs, as a running
`flowprobe run` does: `flowprobe top --control-socket PATH` watches it, `flowprobe flows` lists
what it holds.

Without -c the built-in config meters: the flags under "the built-in config" change it, and
--print-config (with --export) prints it as a config file whose `flowprobe run -c` sends the
same flows to the same place, paced alike.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="meter a pcap/pcapng file and show or export its flows",
                       description="Meter a capture file. Without --export, show the flows as "
                                   "the bundled\ncollector decodes them; with --export, send "
                                   "the flow records there.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pcap", metavar="PCAP")
    p.add_argument("-c", "--config", metavar="CONFIG",
                   help="RFC 6728 config (its observation points read PCAP)"
                        "; a file validated before is read back from the validated-config "
                        "cache ($FLOWPROBE_CACHE_DIR, else ~/.cache/flowprobe; off: none)")
    p.add_argument("--export", metavar="URL",
                   help="udp://HOST:PORT, tcp://HOST:PORT or file:PATH (an IPFIX File, "
                        "RFC 5655)")
    p.add_argument("--version", type=int, choices=(10, 9, 5), default=None,
                   help="export protocol: 10 IPFIX, 9 NetFlow v9, 5 NetFlow v5 (default: "
                        "with -c the version of the config's destinations, else 10)")
    p.add_argument("--format", choices=("table", "json"), default=None,
                   help="how to print the flows: table (default on a terminal) or json "
                        "(JSON lines, default when stdout is not a terminal)")
    p.add_argument("--verify", action="store_true",
                   help="check every decoded record against the cache's record; exit 1 if any "
                        "differs or is missing")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no metering summary, only the flows (and the --verify result)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help="packets read and metered per batch (records do not depend on it)")
    add_rate_option(p)
    add_control_flag(p)
    add_meter_flags(meter_group(p, "the capture"))
    p.set_defaults(func=replay)
