"""``flowprobe collect``: the bundled collector (NetFlow v5/v9, IPFIX, sFlow v5) on UDP/TCP.

Runs until SIGINT/SIGTERM, then decodes what already arrived, flushes the output and prints
statistics (messages, records, malformed by reason, sequence gaps) to stderr. ``?count=N`` on
a listen URL runs N worker processes (``probe.collect.workers``) whose output this process
writes, whole batches at a time.
TCP carries IPFIX, NetFlow v9 and v5 (see ``probe.collect.framing`` for how v9 is framed).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from probe.errors import UserError

if TYPE_CHECKING:
    from probe.collect import CollectStats, Limits


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collect", help="receive NetFlow v5/v9, IPFIX and sFlow v5 and print the flows",
        description="The bundled collector: decodes NetFlow v5/v9 and IPFIX over UDP and TCP, "
                    "and sFlow v5 over UDP.")
    p.add_argument("--listen", action="append", default=[], metavar="URL",
                   help="netflow://HOST:PORT (NetFlow v5/v9, IPFIX over UDP; udp:// is the "
                        "same), sflow://HOST:PORT (sFlow v5), flow://HOST:PORT (both), "
                        "tcp://HOST:PORT (NetFlow/IPFIX over TCP); repeatable; port 0 = any "
                        "free; ?count=N opens N sockets on the port (SO_REUSEPORT), each "
                        "served by its own worker process")
    p.add_argument("-c", "--config", metavar="CONFIG",
                   help="RFC 6728 config: listen on its collectingProcess endpoints")
    p.add_argument("--format", choices=("json", "text"), default="json",
                   help="json: one JSON object per flow (goflow2 names); text: a table")
    p.add_argument("--output", metavar="FILE", help="write flows here instead of stdout")
    p.add_argument("--buffer-size", type=_size, metavar="BYTES",
                   help="UDP receive buffer per socket (default 64M; K/M/G suffixes); above "
                        "net.core.rmem_max only with CAP_NET_ADMIN")
    p.add_argument("--max-memory", type=_size, metavar="BYTES", default=None,
                   help="bound on the collector's memory (default 256M): the state exporters "
                        "can make it keep (templates, held data, domains, samplers, TCP "
                        "buffers) gets what the process does not need itself, shared out per "
                        "exporter; with ?count=N each worker gets 1/N")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on this port (127.0.0.1 unless "
                        "--metrics-address)")
    p.add_argument("--metrics-address", default="127.0.0.1", metavar="ADDR",
                   help="address of the metrics endpoint (default 127.0.0.1)")
    p.set_defaults(func=run)


def _size(text: str) -> int:
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    try:
        n = int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8M)") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (must be above 0)")
    return n


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
    from probe.collect.limits import memory_limits
    from probe.collect.server import parse_listen
    from probe.collect.workers import worker_count

    urls = list(args.listen)
    if args.config:
        urls += _config_listens(args.config)
    if not urls:
        raise UserError("collect: give --listen netflow://HOST:PORT (or sflow://, flow://, "
                        "udp://, tcp://) or -c CONFIG")
    endpoints = [parse_listen(u) for u in urls]
    workers = worker_count(endpoints)
    limits = memory_limits(args.max_memory, workers)

    binary: BinaryIO = sys.stdout.buffer
    if args.output:
        try:
            binary = open(args.output, "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UserError(f"--output {args.output}: {exc.strerror}") from None
    try:
        if workers > 1:
            stats = _run_workers(args, endpoints, limits, binary)
        else:
            stats = _run_one(args, endpoints, limits, binary)
    finally:
        binary.flush()
        if binary is not sys.stdout.buffer:
            binary.close()
    print(stats.format(), file=sys.stderr, flush=True)
    return 0


def _listening(bound: list) -> None:
    for ep in bound:
        print(f"listening on {ep.url()}", file=sys.stderr, flush=True)


def _metrics(args: argparse.Namespace, snapshot: Callable[[], CollectStats]) -> Any:
    if args.metrics_port is None:
        return None
    from probe.collect.metrics import families
    from probe.service.metrics import serve

    return serve(snapshot, args.metrics_port, args.metrics_address, make=families)


def _encoder(fmt: str) -> Callable[[list], bytes]:
    from probe.output import json_bytes, table_stream_rows

    if fmt == "text":
        return lambda batches: table_stream_rows(batches).encode()
    return json_bytes


def _run_one(args: argparse.Namespace, endpoints: list, limits: Limits,
             binary: BinaryIO) -> CollectStats:
    from probe.collect.decoder import Decoder
    from probe.collect.server import CollectorLoop
    from probe.output import table_stream_head, totals_line

    encode = _encoder(args.format)

    def sink(batches: list) -> None:
        binary.write(encode(batches))
        binary.flush()  # a reader of the file sees each batch as it is decoded

    decoder = Decoder(limits)
    loop = CollectorLoop(endpoints, sink, decoder, rcvbuf=args.buffer_size)
    _listening(loop.bind())
    server = _metrics(args, lambda: decoder.stats)
    if args.format == "text":
        binary.write(table_stream_head().encode())
    previous = {s: signal.signal(s, lambda *_: loop.stop()) for s in
                (signal.SIGINT, signal.SIGTERM)}
    try:
        loop.run()
        decoder.finish()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        loop.close()
        if server is not None:
            server.shutdown()
    st = decoder.stats
    if args.format == "text":
        binary.write(totals_line(st.records, st.flow_packets, st.flow_octets).encode())
    return st


def _run_workers(args: argparse.Namespace, endpoints: list, limits: Limits,
                 binary: BinaryIO) -> CollectStats:
    from probe.collect import workers
    from probe.output import table_stream_head, totals_line

    sets: list[workers.WorkerSet] = []
    from probe.collect.stats import CollectStats as Stats

    server = _metrics(args, lambda: sets[0].total() if sets else Stats())
    if args.format == "text":
        binary.write(table_stream_head().encode())

    def write(data: bytes) -> None:
        binary.write(data)
        binary.flush()

    try:
        st = workers.serve(endpoints, limits, _encoder(args.format), write,
                           rcvbuf=args.buffer_size, on_bound=_listening, share=sets.append)
    finally:
        if server is not None:
            server.shutdown()
    if args.format == "text":
        binary.write(totals_line(st.records, st.flow_packets, st.flow_octets).encode())
    return st
