"""``flowprobe run -c CONFIG``: run every observation point of a config until done or stopped;
``flowprobe run -i IFACE --export URL``: the same with the built-in config, softflowd-style.

Offline runs end after every flow is exported. Live runs are a service: SIGTERM/SIGINT export
every flow and exit 0, SIGHUP reloads the config (``probe.service.runner``), ``flowprobe stats``
asks the control socket. Only argparse is imported at the top: ``flowprobe --help`` and the
other sub-commands must not pay for the pipeline.
"""

from __future__ import annotations

import argparse

from probe.cli.meter_flags import add_meter_flags, meter_group, refuse_with_config
from probe.errors import UserError

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_BUFFER = 32 << 20  # kernel capture buffer: ~1 s of 20k pps of full-size frames


def parse_size(text: str) -> int:
    """``65536``, ``512K``, ``32M``, ``1G`` -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B")
    mult = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    if not number.isdigit() or int(number) * mult < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: a size of at least 64K (e.g. 32M)")
    return int(number) * mult


def parse_rate(text: str) -> int:
    """``--rate``: bytes per second, ``20M`` = 20,000,000 (K, M, G: powers of 1000); 0 = off."""
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    t = text.strip().upper().removesuffix("/S").removesuffix("B")
    mult = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    try:
        value = float(number) * mult
    except ValueError:
        value = -1.0
    if not number or not 0 <= value < 2**32 or (value and value < 1500):
        raise argparse.ArgumentTypeError(
            f"{text!r}: bytes per second, e.g. 20M; at least 1500 (one message a second), "
            "below 4G, or 0 for no pacing")
    return int(value)


def add_rate_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=parse_rate, default=None, metavar="BYTES_PER_S",
                   help="send at most this many bytes per second to each destination (K, M, "
                        "G: x1000; 0: unpaced). Overrides rateLimit. Default: offline, "
                        "UDP destinations without rateLimit get 5M (a collector's default "
                        "socket buffer keeps up); live capture is not paced")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of at least 1")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: a port 1..65535")
    return int(text)


def _one_liner(args: argparse.Namespace) -> object:
    """The built-in config on ``-i``'s interfaces, exporting to ``--export``."""
    from probe.cli.meter_flags import meter_options
    from probe.cli.replay_config import export_destination
    from probe.config.defaults import default_config

    version = args.version or 10
    return default_config(export=export_destination(args.export, version), version=version,
                          options=meter_options(args), interfaces=tuple(args.interface))


def run(args: argparse.Namespace) -> int:
    refuse_with_config("run", args, *(flag for flag, value in (
        ("-i", args.interface), ("--export", args.export), ("--version", args.version))
        if value))
    if args.config is None:
        if not args.interface:
            raise UserError("flowprobe run: give -c CONFIG, or -i INTERFACE --export URL")
        if args.export is None:
            raise UserError("flowprobe run: -i needs --export udp://HOST:PORT, "
                            "tcp://HOST:PORT or file:PATH (where the flow records go)")
        config = _one_liner(args)
        if args.print_config:
            from probe.cli.meter_flags import print_config

            return print_config(config)  # type: ignore[arg-type]
    else:
        config = None
    from probe.service import logsetup

    logsetup.configure(args.log_level)
    from probe.service.main import serve

    return serve(args, config)  # type: ignore[arg-type]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the observation points of a config, or meter "
                                   "interfaces with the built-in one",
                       description="Meter live interfaces or offline files as configured (-c), "
                                   "or live interfaces with the built-in config (-i IFACE "
                                   "--export URL, as softflowd -i IFACE -n HOST:PORT); "
                                   "offline runs end after every flow is exported, live runs "
                                   "on SIGINT/SIGTERM (every flow is exported first). SIGHUP "
                                   "reloads the config file: a bad one is refused and the "
                                   "running one kept; a good one ends the old flows (forced "
                                   "end), exports them and starts the new pipeline.")
    p.add_argument("-c", "--config", metavar="CONFIG",
                   help="the RFC 6728 config to run (goflowd form or RFC 7951)"
                        "; a file validated before is read back from the validated-config "
                        "cache ($FLOWPROBE_CACHE_DIR, else ~/.cache/flowprobe; off: none)")
    p.add_argument("--batch-size", type=_positive, default=None, metavar="N",
                   help="packets read per call (default 65536)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                   help="log to stderr from this level on (default info); ISO times, or "
                        "syslog priorities instead when journald reads stderr")
    p.add_argument("--pid-file", metavar="PATH", help="write the pid here; removed at exit")
    p.add_argument("--user", metavar="NAME",
                   help="switch to this user once the captures are open (keeps only "
                        "CAP_NET_RAW and CAP_NET_ADMIN, to reopen captures on reload)")
    p.add_argument("--control-socket", metavar="PATH",
                   help="unix socket for `flowprobe stats`, `flows`, `top`, `expire-all` "
                        "and `send-templates` (live: default /run/flowprobe/flowprobe.sock "
                        "as root, else $XDG_RUNTIME_DIR/flowprobe.sock or "
                        "/tmp/flowprobe-UID.sock; 'none' disables it; offline files: only "
                        "when given)")
    p.add_argument("--metrics-port", type=_port, metavar="PORT",
                   help="serve Prometheus metrics on this TCP port")
    p.add_argument("--metrics-address", default="127.0.0.1", metavar="ADDR",
                   help="address of the metrics endpoint (default 127.0.0.1)")
    p.add_argument("--buffer-size", type=parse_size, default=DEFAULT_BUFFER, metavar="SIZE",
                   help="kernel capture buffer per interface (default 32M)")
    p.add_argument("--workers", type=_positive, default=1, metavar="N",
                   help="capture processes sharing each interface (PACKET_FANOUT hash: a "
                        "flow always lands in one process); default 1")
    add_rate_option(p)
    g = meter_group(p, "the interfaces")
    g.add_argument("-i", "--interface", action="append", metavar="IFACE",
                   help="capture on this interface (repeatable: one observation point each, "
                        "one cache)")
    g.add_argument("--export", metavar="URL",
                   help="send the flow records to udp://HOST:PORT or tcp://HOST:PORT, or "
                        "write them to file:PATH (an IPFIX File, RFC 5655)")
    g.add_argument("--version", type=int, choices=(10, 9, 5), default=None,
                   help="export protocol: 10 IPFIX (default), 9 NetFlow v9, 5 NetFlow v5")
    add_meter_flags(g)
    p.set_defaults(func=run)
