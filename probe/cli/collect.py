"""``flowprobe collect``: the bundled collector (NetFlow v5/v9, IPFIX, sFlow v5) on UDP/TCP.

Runs until SIGINT/SIGTERM, then decodes what already arrived, flushes the output and prints
statistics (messages, records, malformed by reason, sequence gaps) to stderr. ``?count=N`` on
a listen URL runs N worker processes (``probe.collect.workers``) whose output this process
writes, whole batches at a time. IPFIX Files (``--read``, a config's fileReader) are decoded
first, in this process; with nothing to listen on, the command ends when they are read.
TCP carries IPFIX, NetFlow v9 and v5 (see ``probe.collect.framing`` for how v9 is framed).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from probe.errors import UserError

if TYPE_CHECKING:
    from probe.collect import CollectStats, Limits
    from probe.collect.listen import Endpoint
    from probe.output import FlowOutput


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collect", help="receive NetFlow v5/v9, IPFIX and sFlow v5 and print the flows",
        description="The bundled collector: decodes NetFlow v5/v9 and IPFIX over UDP and TCP, "
                    "sFlow v5 over UDP, and IPFIX Files.")
    p.add_argument("--listen", action="append", default=[], metavar="URL",
                   help="netflow://HOST:PORT (NetFlow v5/v9, IPFIX over UDP; udp:// is the "
                        "same), sflow://HOST:PORT (sFlow v5), flow://HOST:PORT (both), "
                        "tcp://HOST:PORT (NetFlow/IPFIX over TCP); repeatable; port 0 = any "
                        "free; ?count=N opens N sockets on the port (SO_REUSEPORT), each "
                        "served by its own worker process")
    p.add_argument("--read", action="append", default=[], metavar="FILE",
                   help="an IPFIX File (RFC 5655; gzip or bzip2 compressed too) to decode "
                        "before listening (repeatable); with no --listen, exit when read")
    p.add_argument("-c", "--config", metavar="CONFIG",
                   help="RFC 6728 config: listen on its collectingProcess endpoints"
                        "; a file validated before is read back from the validated-config "
                        "cache ($FLOWPROBE_CACHE_DIR, else ~/.cache/flowprobe; off: none)")
    p.add_argument("--format", choices=("json", "bin", "text"), default="json",
                   help="json: one JSON object per flow (goflow2 names); bin: goflow2's "
                        "protobuf (flowpb.FlowMessage, varint-length-delimited); text: a "
                        "table")
    p.add_argument("--mapping", metavar="FILE",
                   help="goflow2 mapping YAML: formatter fields/rename/render/key/protobuf, "
                        "ipfix and netflowv9 field mappings, sflow bits of sampled headers")
    p.add_argument("--context", metavar="FILE",
                   help="YAML of named networks (CIDR -> name and labels): adds context "
                        "(source_group, destination_group, labels) to each flow")
    p.add_argument("--transport", choices=("file", "nats"), default="file",
                   help="file: --output or stdout (default); nats: NATS JetStream, one "
                        "message per flow")
    p.add_argument("--output", metavar="FILE", help="write flows here instead of stdout")
    p.add_argument("--nats-servers", metavar="URL[,URL]", default="nats://127.0.0.1:4222",
                   help="NATS server URLs (default nats://127.0.0.1:4222)")
    p.add_argument("--nats-stream", metavar="NAME", default="flows",
                   help="JetStream stream, created if missing (default flows)")
    p.add_argument("--nats-subject", metavar="PATTERN", default="flows",
                   help="subject of each flow's message; {field} is replaced by the flow's "
                        "value (flows.{sampler_address}), {key} by the mapping's key fields "
                        "(default flows)")
    p.add_argument("--nats-retry-for", metavar="SECONDS", type=float, default=30.0,
                   help="retry a message until acknowledged or this long (default 30); then "
                        "it is counted as lost")
    p.add_argument("--nats-queue", metavar="N", type=int, default=200_000,
                   help="messages waiting for the server at most; more are counted as lost "
                        "(default 200000)")
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


def _config_inputs(path: str) -> tuple[list[Endpoint], list[str]]:
    """The endpoints (a tcpCollector with transportLayerSecurity: TLS) and the IPFIX Files of
    the config's collecting processes."""
    from probe.collect.listen import parse_listen
    from probe.config import load

    config = load(path)
    endpoints: list[Endpoint] = []
    files = [f for cp in config.collecting_processes for f in cp.files]
    for cp in config.collecting_processes:
        if cp.exporting_processes:
            print(f"{path}: collectingProcess {cp.name}: re-exporting collected records is not"
                  " supported; its exportingProcess is ignored", file=sys.stderr)
        for ep in cp.endpoints:
            for addr in ep.local_addresses or ("0.0.0.0",):
                host = f"[{addr}]" if ":" in addr else addr
                endpoints.append(replace(parse_listen(f"{ep.transport}://{host}:{ep.local_port}"),
                                         tls=ep.tls))
    if not endpoints and not files:
        raise UserError(f"{path}: no collectingProcess with a udpCollector, tcpCollector or "
                        "fileReader")
    return endpoints, files


def run(args: argparse.Namespace) -> int:
    from probe.collect.limits import memory_limits
    from probe.collect.server import parse_listen
    from probe.collect.workers import worker_count

    endpoints, files = [parse_listen(u) for u in args.listen], list(args.read)
    if args.config:
        more_endpoints, more_files = _config_inputs(args.config)
        endpoints += more_endpoints
        files += more_files
    if not endpoints and not files:
        raise UserError("collect: give --listen netflow://HOST:PORT (or sflow://, flow://, "
                        "udp://, tcp://), --read FILE or -c CONFIG")
    workers = worker_count(endpoints)
    if workers > 1 and any(ep.tls is not None for ep in endpoints):
        raise UserError("collect: TLS endpoints are served in one process: leave ?count=N "
                        "off the other --listen URLs")
    limits = memory_limits(args.max_memory, workers)

    mapping, context = _mapping_and_context(args)
    transport = _transport(args, mapping, workers)
    from probe.collect.stats import merge
    from probe.output import FlowOutput

    output = FlowOutput(args.format, transport, mapping, context)
    lost = getattr(transport, "stats", None)
    problems: list[str] = []
    try:
        parts = []
        if files:
            read, problems = _read_files(args, files, limits, output)
            parts.append(read)
        if workers > 1:
            parts.append(_run_workers(args, endpoints, limits, output))
        elif endpoints:
            parts.append(_run_one(args, endpoints, limits, output))
        stats = parts[0] if len(parts) == 1 else merge(parts)
    finally:
        transport.close()
    if lost is not None:
        stats.publish_errors["nats"] = lost.lost
    print(stats.format(), file=sys.stderr, flush=True)
    summary = transport.summary()
    if summary:
        print(summary, file=sys.stderr, flush=True)
    if problems:
        raise UserError(*problems)
    return 1 if lost is not None and lost.lost else 0


def _read_files(args: argparse.Namespace, paths: list[str], limits: Limits,
                output: FlowOutput) -> tuple[CollectStats, list[str]]:
    """Decode each IPFIX File in turn (``probe.collect.filereader``); one line for each
    that stopped early, after what it held was written."""
    from probe.collect.decoder import Decoder
    from probe.collect.filereader import read_file
    from probe.output import table_stream_head, totals_line

    decoder = Decoder(limits)
    output.bind(decoder.stats)
    if args.format == "text":
        output.write(table_stream_head().encode())
    problems = []
    for path in paths:
        report = read_file(path, decoder, output.emit)
        if report.problem is not None and report.messages:
            problems.append(f"{path}: {report.problem}; the {report.messages} messages before "
                            "it were decoded")
        elif report.problem is not None:
            problems.append(f"{path}: {report.problem}")
    decoder.finish()
    st = decoder.stats
    if args.format == "text":
        output.write(totals_line(st.records, st.flow_packets, st.flow_octets).encode())
    return st, problems


def _mapping_and_context(args: argparse.Namespace) -> tuple[Any, Any]:
    mapping = context = None
    if args.mapping:
        from probe.format import mapping as mapping_file

        mapping = mapping_file.load(args.mapping)
        for note in mapping_file.port_notes(mapping):
            print(f"{args.mapping}: {note}", file=sys.stderr)
    if args.context:
        from probe.format import context as context_file

        context = context_file.load(args.context)
    return mapping, context


def _transport(args: argparse.Namespace, mapping: Any, workers: int) -> Any:
    """The transport the options name; a message bus that does not answer is exit 1."""
    if args.transport == "file":
        from probe.transport.file import FileTransport

        return FileTransport(args.output)
    if args.format == "text":
        raise UserError("--format text is a table for people: use json or bin with "
                        "--transport nats")
    if args.output:
        raise UserError("--output is for --transport file")
    if args.nats_retry_for <= 0 or args.nats_queue < 1:
        raise UserError("--nats-retry-for and --nats-queue must be positive")
    from probe.format.mapping import NO_MAPPING, known_field
    from probe.transport.nats import NatsTransport, Subject, TransportError

    m = mapping or NO_MAPPING
    for name in Subject.parse(args.nats_subject).fields:
        if name == "key" and not m.key:
            raise UserError(f"--nats-subject {args.nats_subject}: {{key}} needs a --mapping "
                            "with formatter.key")
        if name != "key" and not known_field(m, name):
            raise UserError(f"--nats-subject {args.nats_subject}: no field named {name!r}")
    nats = NatsTransport([u.strip() for u in args.nats_servers.split(",") if u.strip()],
                         args.nats_stream, args.nats_subject,
                         retry_for=args.nats_retry_for, max_pending=args.nats_queue)
    try:
        nats.start(now=workers <= 1)  # workers fork after this: no thread yet
    except TransportError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None
    return nats


def _listening(bound: list) -> None:
    for ep in bound:
        print(f"listening on {ep.url()}", file=sys.stderr, flush=True)


def _metrics(args: argparse.Namespace, snapshot: Callable[[], CollectStats]) -> Any:
    if args.metrics_port is None:
        return None
    from probe.collect.metrics import families
    from probe.service.metrics import serve

    return serve(snapshot, args.metrics_port, args.metrics_address, make=families)


def _run_one(args: argparse.Namespace, endpoints: list, limits: Limits,
             output: FlowOutput) -> CollectStats:
    from probe.collect.decoder import Decoder
    from probe.collect.server import CollectorLoop
    from probe.output import table_stream_head, totals_line

    decoder = Decoder(limits)
    output.bind(decoder.stats)
    # a reader of the file sees each batch as decoded
    loop = CollectorLoop(endpoints, output.emit, decoder, rcvbuf=args.buffer_size)
    _listening(loop.bind())
    server = _metrics(args, lambda: _with_publish_errors(decoder.stats, output))
    if args.format == "text":
        output.write(table_stream_head().encode())
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
        output.write(totals_line(st.records, st.flow_packets, st.flow_octets).encode())
    return st


def _with_publish_errors(st: CollectStats, output: FlowOutput) -> CollectStats:
    """The statistics with what the transport (in this process) could not publish."""
    nats = getattr(output.transport, "stats", None)
    if nats is not None:
        st.publish_errors["nats"] = nats.lost
    return st


def _run_workers(args: argparse.Namespace, endpoints: list, limits: Limits,
                 output: FlowOutput) -> CollectStats:
    from probe.collect import workers
    from probe.output import table_stream_head, totals_line

    sets: list[workers.WorkerSet] = []
    from probe.collect.stats import CollectStats as Stats

    server = _metrics(args, lambda: _with_publish_errors(
        sets[0].total() if sets else Stats(), output))
    if args.format == "text":
        output.write(table_stream_head().encode())
    try:
        st = workers.serve(endpoints, limits, output, output.write,
                           rcvbuf=args.buffer_size, on_bound=_listening, share=sets.append)
    finally:
        if server is not None:
            server.shutdown()
    if args.format == "text":
        output.write(totals_line(st.records, st.flow_packets, st.flow_octets).encode())
    return st
