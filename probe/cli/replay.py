"""``flowprobe replay PCAP``: meter a capture file with the built-in or a given config.

With ``--export`` the records go to that collector and the metering summary is printed. Without
it the probe exports to the bundled collector in this same process over loopback and prints the
flows the collector decoded (``probe.loopback``), then the summary on stderr.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

from probe.batching import DEFAULT_BATCH_SIZE
from probe.errors import UserError
from probe.ie.reasons import FLOW_END_REASONS

if TYPE_CHECKING:  # the pipeline and the config model load only when a command runs
    from collections.abc import Callable

    from probe.config import model
    from probe.pipeline import PipelineStats



def _check_pcap(path: str) -> None:
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a capture file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such capture file")


def parse_export_url(url: str) -> tuple[str, str, int]:
    """``udp://H:P`` / ``tcp://H:P`` (IPv6 host in brackets) -> (transport, host, port)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("udp", "tcp"):
        raise UserError(f"--export {url}: scheme must be udp:// or tcp://")
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or not tail.startswith(":"):
            raise UserError(f"--export {url}: expected [IPv6]:PORT after {scheme}://")
        port_text = tail[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            raise UserError(f"--export {url}: missing :PORT")
    if not host:
        raise UserError(f"--export {url}: missing host")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UserError(f"--export {url}: port must be 1..65535")
    return scheme, host, int(port_text)


def _with_exporter(cfg: model.Cache, eps: tuple[model.ExportingProcess, ...] | None
                   ) -> model.Cache:
    return cfg if eps is None else replace(cfg, exporting_processes=eps)


def rewire(config: model.Config, pcap: str,
           eps: tuple[model.ExportingProcess, ...] | None) -> model.Config:
    """The config with every observation point reading ``pcap`` and, when ``eps`` is given,
    every cache exporting there instead of to its configured exporting processes."""
    caches = {c.name: _with_exporter(c, eps) for c in config.caches}
    sps = {sp.name: replace(sp, cache=caches.get(sp.cache.name) if sp.cache else None)
           for sp in config.selection_processes}
    ops = tuple(replace(
        op, offline_file=pcap, if_names=(),
        selection_processes=tuple(sps.get(sp.name, sp) for sp in op.selection_processes))
        for op in config.observation_points)
    return replace(
        config, observation_points=ops, selection_processes=tuple(sps.values()),
        caches=tuple(caches.values()),
        exporting_processes=(*config.exporting_processes, *(eps or ())))


def build_config(args: argparse.Namespace) -> model.Config:
    """The config of a replay with ``--export`` (or none): the pcap feeds every observation
    point, and ``--export`` replaces the config's exporting processes."""
    export = parse_export_url(args.export) if args.export else None
    _check_pcap(args.pcap)
    version = args.version or 10
    if args.config is None:
        from probe.config.defaults import default_config

        return default_config(args.pcap, export=export, version=version)
    from probe.config import load

    config = load(args.config, replay=True)
    eps = None
    if export is not None:
        from probe.config.defaults import default_config

        eps = default_config(args.pcap, export=export, version=version).exporting_processes
    return rewire(config, args.pcap, eps)


def _configured_version(config: model.Config) -> int | None:
    """The export version the config's destinations use, when they all agree."""
    versions = {d.ipfix_version for c in config.caches for ep in c.exporting_processes
                for d in ep.destinations}
    return versions.pop() if len(versions) == 1 else None


def loopback_config(args: argparse.Namespace
                    ) -> tuple[int, Callable[[model.ExportingProcess], model.Config]]:
    """The export version and the config of an in-process replay, given its exporting process.

    With ``-c`` the config's caches export to the in-process collector instead of to their
    configured destinations (``flowprobe run -c`` sends there), in the version those
    destinations use unless ``--version`` says otherwise.
    """
    _check_pcap(args.pcap)
    if args.config is None:
        from probe.config.defaults import default_config

        version = args.version or 10
        base = default_config(args.pcap, version=version)
    else:
        from probe.config import load

        base = load(args.config, replay=True)
        version = args.version or _configured_version(base) or 10
        if version == 5:
            from probe.ie import V5_CARRIABLE

            problems = [f"{args.config}: cache {c.name!r}: NetFlow v5 cannot carry "
                        f"{', '.join(bad)}" for c in base.caches
                        if (bad := [f.ie_name for f in c.layout.fields
                                    if f.ie_name not in V5_CARRIABLE])]
            if problems:
                raise UserError(*problems)

    def make(ep: model.ExportingProcess) -> model.Config:
        cfg = rewire(base, args.pcap, (ep,))
        return replace(cfg, exporting_processes=(ep,))

    return version, make


def print_summary(stats: PipelineStats, out: TextIO) -> None:
    """What a replay without an exporter shows: what was read, skipped and metered."""
    for p in stats.points:
        print(f"observation point {p.name}", file=out)
        print(f"  packets read        {p.packets_read}", file=out)
        print(f"  packets decoded     {p.packets_decoded}", file=out)
        for reason, n in sorted(p.ignored.items()):
            print(f"  ignored: {reason:<10} {n}", file=out)
    for s in stats.selectors:
        print(f"selector {s.selection_process}/{s.name}: observed {s.packets_observed}, "
              f"dropped {s.packets_dropped}", file=out)
    for name, c in stats.caches.items():
        print(f"cache {name}", file=out)
        print(f"  flows created       {c.flows_created}", file=out)
        for reason, n in sorted(c.expired.items()):
            print(f"  expired: {FLOW_END_REASONS.get(reason, reason):<18} {n}", file=out)
        print(f"  records             {c.records}", file=out)
        if c.packets_dropped:
            print(f"  packets not metered (cache full) {c.packets_dropped}", file=out)


def replay(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.export is None:
        from probe.cli.replay_flows import show_flows

        return show_flows(args)
    for flag, given in (("--verify", args.verify), ("--format", args.format)):
        if given:
            raise UserError(f"{flag}: only without --export (the flows are shown by the "
                            "in-process collector)")
    # Start-up (numpy, the pipeline's modules, the config) makes objects that all live to the
    # end: cyclic garbage collection during it is wasted work on the way to the first packet.
    # They are frozen out of later collections once the pipeline is built.
    gc.disable()
    early = None
    try:
        from probe.memory import keep_freed_memory

        keep_freed_memory()  # before the reader is forked: it inherits the setting
        config = build_config(args)
        # The first observation point's file is opened, and a child starts reading it, before
        # the pipeline's modules are imported: the read overlaps the rest of start-up.
        from probe.cache.base import columns_for_point
        from probe.capture import forked

        first = next(iter(config.observation_points), None)
        if first is not None:
            early = forked.start(first, args.batch_size, columns_for_point(first))
        from probe.capture import open_observation_point
        from probe.pipeline import Pipeline

        def open_source(op: model.ObservationPoint) -> object:
            return early if op is first else open_observation_point(op)

        pipeline = Pipeline(config, batch_size=args.batch_size, open_source=open_source)
        gc.freeze()
        gc.enable()
        stats = pipeline.run()
    finally:
        gc.enable()
        if early is not None:
            early.close()
    if not args.quiet:
        print_summary(stats, sys.stdout)
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

With --export URL the records go there instead and the summary is printed on stdout.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="meter a pcap/pcapng file and show or export its flows",
                       description="Meter a capture file. Without --export, show the flows as "
                                   "the bundled\ncollector decodes them; with --export, send "
                                   "the flow records there.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pcap", metavar="PCAP")
    p.add_argument("-c", "--config", metavar="CONFIG",
                   help="RFC 6728 config (its observation points read PCAP)")
    p.add_argument("--export", metavar="URL", help="udp://HOST:PORT or tcp://HOST:PORT")
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
    p.set_defaults(func=replay)
