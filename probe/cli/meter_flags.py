"""The flags ``flowprobe run -i`` and ``flowprobe replay`` share: what they change in the
built-in config (``probe.config.defaults``), as softflowd's ``-T``, ``-s``, ``-t``, ``-m`` do,
and ``--print-config``, which writes the config they stand for as a file.

One definition for both commands, so a flag means the same in each. None of them mixes with
``-c``: a config file says all of that itself. Only argparse is imported at the top.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from probe.errors import UserError

if TYPE_CHECKING:
    from probe.config.defaults import MeterOptions
    from probe.config.model import Config

KEY_LEVELS = ("full", "proto", "ip")  # probe.config.defaults.KEY_LEVELS, without importing it
_UINT32 = 0xFFFFFFFF
# dest -> the flag a user typed, in the order --help lists them
FLAGS = {"keys": "--keys", "sample": "--sample", "active": "--active", "idle": "--idle",
         "max_flows": "--max-flows", "bpf": "--bpf", "biflow": "--biflow",
         "print_config": "--print-config"}


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _UINT32:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 1 to {_UINT32}")
    return int(text)


def _seconds(text: str) -> int:
    if not text.isdigit() or int(text) > _UINT32:
        raise argparse.ArgumentTypeError(f"{text!r}: whole seconds, 0 for never")
    return int(text)


def meter_group(p: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    """The group of ``--help`` the built-in config's flags go in (``add_meter_flags``)."""
    return p.add_argument_group(
        "the built-in config (not with -c)",
        f"All IP traffic of {what}, IPv4 and IPv6, in one timeout cache; these flags change it "
        "as softflowd's -T, -s, -t, -m and -b do. --print-config shows the RFC 6728 config they "
        "stand for.")


def add_meter_flags(g: argparse._ArgumentGroup) -> None:
    """The built-in config's flags."""
    g.add_argument("--keys", choices=KEY_LEVELS, metavar="full|proto|ip",
                   help="flow key: full (the 5-tuple, ICMP type and code in place of ports; "
                        "default), proto (addresses and protocol), ip (addresses)")
    g.add_argument("--sample", type=_count, metavar="N",
                   help="meter 1 packet in N (count-based: the first of every N), as "
                        "softflowd -s; collectors scale by N (RFC 5476 options)")
    g.add_argument("--active", type=_seconds, metavar="S",
                   help="active timeout: a flow is exported every S seconds while it lasts "
                        "(default 1800; 0 never)")
    g.add_argument("--idle", type=_seconds, metavar="S",
                   help="idle timeout: a flow ends after S seconds without a packet "
                        "(default 300; 0 never)")
    g.add_argument("--max-flows", type=_count, metavar="N",
                   help="flows the cache holds at once; when full the least recently seen "
                        "ends (default 65536)")
    g.add_argument("--bpf", metavar="EXPR",
                   help="meter only packets this libpcap filter takes (tcpdump syntax)")
    g.add_argument("--biflow", action="store_true",
                   help="one record per conversation, both directions (RFC 5103 reverse IEs; "
                        "the first packet's source is the initiator), as softflowd -b; "
                        "NetFlow v5/v9 get two one-way records each")
    g.add_argument("--print-config", action="store_true",
                   help="print the RFC 6728 config (goflowd form) these flags stand for and "
                        "exit; `flowprobe run -c` of it meters the same flows")


def given(args: argparse.Namespace) -> list[str]:
    """The built-in config's flags given on the command line."""
    return [flag for dest, flag in FLAGS.items() if getattr(args, dest) not in (None, False)]


def refuse_with_config(command: str, args: argparse.Namespace, *more: str) -> None:
    """``-c`` and the flags that build a config do not mix: one line, exit 2."""
    flags = [*more, *given(args)]
    if args.config is not None and flags == ["--print-config"]:
        raise UserError(f"flowprobe {command}: -c and --print-config do not mix: the file is "
                        "the config already (`flowprobe validate --rfc7951 FILE` prints it "
                        "normalised)")
    if args.config is not None and flags:
        raise UserError(f"flowprobe {command}: -c and {', '.join(flags)} do not mix: the "
                        "config file says all of that (--print-config without -c writes "
                        "the flags as a config file)")


def meter_options(args: argparse.Namespace) -> MeterOptions:
    from probe.config.defaults import MeterOptions

    chosen = {"keys": args.keys, "sample": args.sample, "active_timeout": args.active,
              "idle_timeout": args.idle, "max_flows": args.max_flows, "bpf_filter": args.bpf,
              "biflow": args.biflow or None}
    return MeterOptions(**{k: v for k, v in chosen.items() if v is not None})


def print_config(config: Config) -> int:
    """``--print-config``: the config as a goflowd-form file on stdout."""
    from probe.config.dump import goflowd_form

    json.dump(goflowd_form(config), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
