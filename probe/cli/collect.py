"""``flowprobe collect``: the bundled collector on UDP/TCP, JSON lines or a text table out.

Runs until SIGINT/SIGTERM, then decodes what already arrived, flushes the output and prints
statistics (messages, records, malformed by reason, sequence gaps) to stderr.
TCP carries IPFIX, NetFlow v9 and v5 (see ``probe.collect.framing`` for how v9 is framed).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TextIO

from probe.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collect", help="receive NetFlow v5/v9 and IPFIX and print the flows",
        description="The bundled collector: decodes NetFlow v5/v9 and IPFIX over UDP and TCP.")
    p.add_argument("--listen", action="append", default=[], metavar="URL",
                   help="udp://HOST:PORT or tcp://HOST:PORT (repeatable; port 0 = any free)")
    p.add_argument("-c", "--config", metavar="CONFIG",
                   help="RFC 6728 config: listen on its collectingProcess endpoints")
    p.add_argument("--format", choices=("json", "text"), default="json",
                   help="json: one JSON object per flow (goflow2 names); text: a table")
    p.add_argument("--output", metavar="FILE", help="write flows here instead of stdout")
    p.set_defaults(func=run)


def _config_listens(path: str) -> list[str]:
    from probe.config import load

    config = load(path)
    urls = []
    for cp in config.collecting_processes:
        if cp.exporting_processes:
            print(f"{path}: collectingProcess {cp.name}: re-exporting collected records is not"
                  " supported; its exportingProcess is ignored", file=sys.stderr)
        for ep in cp.endpoints:
            for addr in ep.local_addresses or ("0.0.0.0",):
                host = f"[{addr}]" if ":" in addr else addr
                urls.append(f"{ep.transport}://{host}:{ep.local_port}")
    if not urls:
        raise UserError(f"{path}: no collectingProcess with a udpCollector or tcpCollector")
    return urls


def run(args: argparse.Namespace) -> int:
    from probe.collect.decoder import Decoder
    from probe.collect.server import CollectorLoop, parse_listen
    from probe.output import JsonWriter, TableWriter

    urls = list(args.listen)
    if args.config:
        urls += _config_listens(args.config)
    if not urls:
        raise UserError("collect: give --listen udp://HOST:PORT (or tcp://) or -c CONFIG")
    endpoints = [parse_listen(u) for u in urls]

    out: TextIO = sys.stdout
    if args.output:
        try:
            out = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UserError(f"--output {args.output}: {exc.strerror}") from None
    writer = TableWriter(out, stream=True) if args.format == "text" else JsonWriter(out)

    def sink(batches: list) -> None:
        writer.write(batches)
        writer.close()  # flushed: a reader of the file sees each batch as it is decoded

    decoder = Decoder()
    loop = CollectorLoop(endpoints, sink, decoder)
    bound = loop.bind()
    for ep in bound:
        print(f"listening on {ep.url()}", file=sys.stderr, flush=True)
    previous = {s: signal.signal(s, lambda *_: loop.stop()) for s in
                (signal.SIGINT, signal.SIGTERM)}
    try:
        loop.run()
        decoder.finish()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        loop.close()
        writer.close()
        if out is not sys.stdout:
            out.close()
    print(decoder.stats.format(), file=sys.stderr, flush=True)
    return 0
