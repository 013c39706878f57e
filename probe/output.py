"""How flows and run summaries are shown: the one place for output formats.

goflow2 keeps its formats in one package that its command and its pipe both use; here
``flowprobe replay`` (with the loopback's collector), ``flowprobe collect`` and ``flowprobe
run`` print through this module:

- ``JsonWriter``: one JSON line per flow, goflow2's field names (``Record.flow`` as decoded,
  or a whole ``FlowBatch`` at once, from its columns);
- ``TableWriter``: the flows as nfdump lays them out, one row per flow (``table_row``), either
  streamed as they arrive or sorted by first seen with columns as wide as the widest value;
  ``cached_row`` the same for a flow still in a running probe's cache (``flowprobe flows``);
- ``FlowOutput``: what ``flowprobe collect`` does with decoded batches, goflow2's chain: the
  mapping's field entries, context enrichment, a format (JSON, goflow2's protobuf, the
  table), then a transport (a file or stdout, NATS JetStream);
- ``print_summary``: what a pipeline read, skipped and metered; ``print_exports``: what each
  export destination sent and what its transport could confirm; ``print_loopback_summary``:
  what went over the loopback and came back; ``ProgressLine``: how far a long replay is;
- the helpers that turn one value into text (``time_text``, ``endpoint_text``, ``flags_text``,
  ``proto_text``, ``value_text``), also used by ``replay --verify`` to name differences.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from probe.ie import by_name
from probe.ie.reasons import FLOW_END_REASONS

if TYPE_CHECKING:  # only annotations: `flowprobe collect` does not load the pipeline
    from probe.collect import CollectStats, FlowBatch, Record
    from probe.config.model import Config
    from probe.format.context import Context
    from probe.format.mapping import Mapping as MappingFile
    from probe.pipeline import Pipeline, PipelineStats

PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMPv6", 132: "SCTP"}
TCP_FLAGS = "FSRPAUEC"  # TCP flag bits 0..7: FIN SYN RST PSH ACK URG ECE CWR
EXPORT_PROTOCOLS = {10: "IPFIX", 9: "NetFlow v9", 5: "NetFlow v5"}


# ------------------------------------------------------------------ one value as text
def time_text(ns: object) -> str:
    """Nanoseconds since the epoch as UTC, to the millisecond; ``-`` when unknown."""
    if not isinstance(ns, int) or ns <= 0:
        return "-"
    try:
        t = datetime.fromtimestamp(ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return "-"
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{ns // 1_000_000 % 1000:03d}"


def endpoint_text(addr: object, port: object) -> str:
    """``addr:port``, an IPv6 address in brackets."""
    a = str(addr) if addr is not None else "?"
    if ":" in a:
        a = f"[{a}]"
    return a if port is None else f"{a}:{port}"


def flags_text(v: object) -> str:
    """TCP flags as nfdump writes them: a letter per bit set, a dot per bit clear."""
    if not isinstance(v, int):
        return ""
    return "".join(c if v >> i & 1 else "." for i, c in enumerate(TCP_FLAGS))


def proto_text(proto: object) -> str:
    return PROTOCOLS.get(proto, str(proto)) if isinstance(proto, int) else "-"


def value_text(ie_name: str, v: object) -> str:
    """An IE's plain value (as a ``Record.raw`` or a cache row holds it) as people read it:
    addresses in their usual notation, octets in hex."""
    kind = getattr(by_name(ie_name), "data_type", None)
    if kind == "ipv4Address" and isinstance(v, int):
        return str(ipaddress.IPv4Address(v))
    if kind == "ipv6Address" and isinstance(v, bytes) and len(v) == 16:
        return str(ipaddress.IPv6Address(v))
    return v.hex() if isinstance(v, bytes) else str(v)


# ------------------------------------------------------------------ flows
TABLE_HEAD = ("first seen", "duration", "proto", "src", "", "dst", "flags", "packets", "bytes")
_RIGHT = frozenset({1, 3, 7, 8})  # right-aligned columns: numbers, and src against its arrow
_STREAM_WIDTHS = (23, 8, 6, 47, 2, 47, 8, 9, 12)  # a streamed table cannot measure its rows


def table_row(flow: Mapping[str, object]) -> tuple[str, ...]:
    """One flow (a ``Record.flow``) as a table row: first seen, duration, protocol, source,
    ``->``, destination (ICMP type.code where the port goes, as nfdump), TCP flags (TCP
    only), packets, bytes."""
    start, end = flow.get("time_flow_start_ns"), flow.get("time_flow_end_ns")
    dur = f"{(end - start) / 1e9:.3f}" if isinstance(start, int) and isinstance(end, int) \
        else "-"
    proto = flow.get("proto")
    dport = flow.get("dst_port")
    if proto in (1, 58) and "icmp_type" in flow:
        dport = f"{flow['icmp_type']}.{flow.get('icmp_code', 0)}"
    flags = flags_text(flow["tcp_flags"]) if proto == 6 and "tcp_flags" in flow else ""
    return (time_text(start), dur, proto_text(proto),
            endpoint_text(flow.get("src_addr"), flow.get("src_port")), "->",
            endpoint_text(flow.get("dst_addr"), dport), flags,
            str(flow.get("packets", 0)), str(flow.get("bytes", 0)))


def si_text(v: float) -> str:
    """A count in at most five characters, as top shows it: 999, 1.2k, 12.3M, 123G."""
    for unit in ("", "k", "M", "G", "T"):
        if v < 999.5 or unit == "T":
            if not unit:
                return f"{v:.0f}"
            return f"{v:.1f}{unit}" if v < 99.95 else f"{v:.0f}{unit}"
        v /= 1000
    raise AssertionError("unreachable")


# A cached flow (``flowprobe flows``): how long since first and last seen, and its rate, in
# place of the first-seen time and duration of an ended one.
CACHED_HEAD = ("age s", "idle s", "proto", "src", "", "dst", "flags", "packets", "bytes",
               "bit/s")
CACHED_RIGHT = frozenset({0, 1, 3, 7, 8, 9})


def cached_row(flow: Mapping[str, object]) -> tuple[str, ...]:
    """One cached flow (``probe.service.flows``) as a ``CACHED_HEAD`` row."""
    rate = flow.get("rate_bps")
    return (f"{flow.get('age_s', 0):.1f}", f"{flow.get('idle_s', 0):.1f}", *table_row(flow)[2:],
            si_text(rate) if isinstance(rate, int | float) else "-")


def first_seen(record: Record) -> tuple:
    """Sort key of a flow table: first seen, last seen, then the addresses."""
    f = record.flow
    return (f.get("time_flow_start_ns") or 0, f.get("time_flow_end_ns") or 0,
            str(f.get("src_addr")), str(f.get("dst_addr")))


def _line(row: tuple[str, ...], widths: Iterable[int], right: frozenset[int] = _RIGHT) -> str:
    return " ".join(x.rjust(w) if i in right else x.ljust(w)
                    for i, (x, w) in enumerate(zip(row, widths, strict=True))).rstrip() + "\n"


def json_bytes(items: Iterable[Record | FlowBatch]) -> bytes:
    """JSON lines of records and batches (a batch's from its columns, in one C call)."""
    parts = []
    for r in items:
        if hasattr(r, "json_lines"):
            parts.append(r.json_lines())
        else:
            parts.append((json.dumps(r.flow, separators=(",", ":")) + "\n").encode())
    return b"".join(parts)


def table_text(head: tuple[str, ...], rows: list[tuple[str, ...]],
               right: frozenset[int] = _RIGHT) -> str:
    """A table with its head, each column as wide as its widest value; ``right``: the
    right-aligned columns (numbers)."""
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    return "".join(_line(row, widths, right) for row in (head, *rows))


class JsonWriter:
    """One JSON object per flow and line, as the flows arrive.

    Writes UTF-8 to the binary stream under ``out`` where there is one (a file, stdout), so a
    batch's bytes go out as they are made."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.binary = getattr(out, "buffer", None)

    def write(self, items: Iterable[Record | FlowBatch]) -> None:
        data = json_bytes(items)
        if self.binary is None:
            self.out.write(data.decode())
            return
        self.out.flush()  # anything written as text before goes first
        self.binary.write(data)

    def close(self) -> None:
        self.out.flush()
        if self.binary is not None:
            self.binary.flush()


def table_stream_head() -> str:
    """The header of a streamed table (fixed widths: the rows are not known yet)."""
    return _line(TABLE_HEAD, _STREAM_WIDTHS)


def table_stream_rows(items: Iterable[Record | FlowBatch]) -> str:
    """Rows of a streamed table, one per flow (a batch's from its records)."""
    out = []
    for r in items:
        for rec in (r.records() if hasattr(r, "records") else (r,)):
            out.append(_line(table_row(rec.flow), _STREAM_WIDTHS))
    return "".join(out)


def totals_line(flows: int, packets: int, octets: int) -> str:
    return f"total: {flows} flows, {packets} packets, {octets} bytes\n"


class TableWriter:
    """The flows as a table with a totals line at the end.

    ``stream``: each flow is written as it arrives, in fixed-width columns (``flowprobe
    collect`` runs until stopped); otherwise the flows are kept until ``close`` and printed by
    first seen, each column as wide as its widest value (``flowprobe replay``: it is for people).
    """

    def __init__(self, out: TextIO, *, stream: bool = False) -> None:
        self.out = out
        self.stream = stream
        self.flows = self.packets = self.bytes = 0
        self._kept: list[Record] = []
        self._header = False

    def write(self, items: Iterable[Record | FlowBatch]) -> None:
        records: list[Record] = []
        for r in items:
            if hasattr(r, "records"):
                records.extend(r.records())
            else:
                records.append(r)
        for r in records:
            pk, by = r.flow.get("packets", 0), r.flow.get("bytes", 0)
            self.flows += 1
            self.packets += pk if isinstance(pk, int) else 0
            self.bytes += by if isinstance(by, int) else 0
        if not self.stream:
            self._kept.extend(records)
            return
        if not self._header:
            self.out.write(table_stream_head())
            self._header = True
        self.out.write(table_stream_rows(records))

    def close(self) -> None:
        if self.stream:
            if not self._header:
                self.out.write(table_stream_head())
        else:
            rows = [table_row(r.flow) for r in sorted(self._kept, key=first_seen)]
            self.out.write(table_text(TABLE_HEAD, rows))
        self.out.write(totals_line(self.flows, self.packets, self.bytes))
        self.out.flush()


class FlowOutput:
    """Decoded batches -> mapping -> enrichment -> format -> transport (goflow2's chain).

    Split in two so that ``?count=N`` workers can share it: calling the object (``encode``)
    turns batches into pieces of bytes where they are decoded (in each worker), ``write``
    hands each piece to the transport where the output is (the parent). For a file the
    pieces are what the file gets, in order (JSON lines about 1 MB at a time, written while
    in cache); for a message bus they are frames of (subject, payload), one per flow.
    ``bind(stats)`` makes the format count what it leaves out in the decoder's statistics
    (``CollectStats.output``), which workers send to the parent with the rest.
    """

    def __init__(self, fmt: str, transport: Any, mapping: MappingFile | None = None,
                 context: Context | None = None) -> None:
        from probe.format.mapping import NO_MAPPING
        from probe.format.produce import Producer
        from probe.format.proto import BinFormat
        from probe.format.render import JsonFormat

        mapping = mapping or NO_MAPPING
        self.fmt = fmt
        self.transport = transport
        self.producer = Producer(mapping)
        self.context = context
        self.format: JsonFormat | BinFormat | None = None
        if fmt == "bin":
            self.format = BinFormat(mapping.protobuf)
        elif fmt == "json":
            self.format = JsonFormat(mapping)
        self.bus = getattr(transport, "subject", None)  # a message bus: subjects per flow
        self.key = mapping.key

    def bind(self, stats: CollectStats) -> None:
        if self.format is not None and hasattr(self.format, "notes"):
            self.format.notes = stats.output

    def __call__(self, batches: list[FlowBatch]) -> list[bytes]:
        from probe.format import is_counters

        if self.producer:
            batches = [part for b in batches for part in self.producer.apply(b)]
        for b in batches:
            if self.context is not None and not is_counters(b):
                self.context.enrich(b)
        if self.format is None:  # the text table: flows only, a line each
            return [table_stream_rows([b for b in batches if not is_counters(b)]).encode()]
        if self.bus is None:
            return list(self.format.pieces(batches))
        from probe.transport.nats import frames

        out = []
        for b in batches:
            payloads = self.format.payloads(b)  # none for what the format leaves out
            if payloads:
                out.append(frames(self.bus.render_batch(b, self.key), payloads))
        return out

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def emit(self, batches: list[FlowBatch]) -> None:
        """Encode and write, in this process: each piece as soon as it is made."""
        for piece in self(batches):
            self.transport.write(piece)


# ------------------------------------------------------------------ progress
def _size_text(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _eta_text(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"


class ProgressLine:
    """How far a replay or an offline run is, on one line of a terminal, rewritten in place.

    Called after each batch (the pipeline's ``on_batch``: no per-packet cost), it writes at
    most every ``interval`` seconds, the first time that long after the first batch: bytes of
    the file read (of its size), packets per second, flows cached, time left. Rates are
    counted from the first batch, so start-up does not make the first estimate wild. Cut to
    the terminal's width, since a wrapped line cannot be rewritten; ``clear`` blanks it before
    anything else is printed. The caller shows it only on a terminal: piped output has none.
    """

    def __init__(self, out: TextIO, interval: float = 0.25,
                 width: Callable[[], int] | None = None) -> None:
        self.out = out
        self.interval = interval
        self._width = width or self._terminal_width
        self._first: tuple[float, int, int] | None = None  # (time, bytes, packets) at batch 1
        self._next = 0.0
        self._shown = 0  # characters on the line now

    def _terminal_width(self) -> int:
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size().columns

    def __call__(self, pipeline: Pipeline) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        read, total, packets = pipeline.input_progress()
        if self._first is None:
            self._first = (now, read, packets)
            return
        t0, read0, packets0 = self._first
        self.show(self.text(read, total, pipeline.flows_cached(), now - t0, read - read0,
                            packets - packets0))

    @staticmethod
    def text(read: int, total: int | None, flows: int, elapsed: float, read_since: int,
             packets_since: int) -> str:
        """The line: ``read`` of ``total`` bytes; the rates from what was read in the last
        ``elapsed`` seconds (``read_since`` bytes, ``packets_since`` packets)."""
        rate = packets_since / elapsed if elapsed > 0 else 0.0
        parts = [f"{_size_text(read)} of {_size_text(total)} ({100 * read // total}%)"
                 if total else f"{_size_text(read)} read",
                 f"{si_text(rate)} packets/s", f"{flows} flows cached"]
        if total and read_since > 0:
            parts.append(f"ETA {_eta_text(elapsed * (total - read) / read_since)}")
        return ", ".join(parts)

    def show(self, text: str) -> None:
        text = text[:max(self._width() - 1, 0)]
        self.out.write("\r" + text + " " * max(self._shown - len(text), 0))
        self.out.flush()
        self._shown = len(text)

    def clear(self) -> None:
        if self._shown:
            self.out.write("\r" + " " * self._shown + "\r")
            self.out.flush()
            self._shown = 0


# ------------------------------------------------------------------ summaries
def print_summary(stats: PipelineStats, out: TextIO) -> None:
    """What a pipeline read, skipped and metered (``replay`` and an offline ``run``)."""
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


def _rate(bytes_per_s: int) -> str:
    for unit, size in (("GB/s", 10**9), ("MB/s", 10**6), ("kB/s", 10**3)):
        if bytes_per_s >= size:
            return f"{bytes_per_s / size:g} {unit}"
    return f"{bytes_per_s} B/s"


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def print_exports(config: Config, exports: Mapping[str, Mapping[str, Mapping[str, int]]],
                  out: TextIO) -> None:
    """One closing line per destination: what was sent, and what its transport can vouch for.

    UDP cannot: a datagram the collector's socket had no room for is dropped without a word
    to the sender, so the line says to compare with the collector's count. TCP can, up to a
    collector that crashes: the records then sent again on the next connection are counted
    (the collector may see them twice), and those that could not be are counted too.
    """
    from probe.config.summary import destination_url

    dests = {(ep.name, d.name): d for ep in config.exporting_processes for d in ep.destinations}
    for ep_name, per_dest in exports.items():
        for name, c in per_dest.items():
            d = dests.get((ep_name, name))
            if d is not None and (url := destination_url(d)) != name:
                name = f"{name} ({url})"
            line = (f"export {name}: {_plural(c.get('records', 0), 'record')} in "
                    f"{_plural(c.get('messages', 0), 'message')} ({c.get('bytes', 0)} bytes)")
            if d is not None and d.rate_limit:
                line += f", paced at {_rate(d.rate_limit)}"
            if c.get("connects", 0) > 1:
                line += f" over {c['connects']} connections"
            if c.get("resent"):
                line += (f"; {_plural(c['resent'], 'record')} sent again after a lost "
                         "connection (the collector may count them twice)")
            if c.get("unconfirmed"):
                line += (f"; {_plural(c['unconfirmed'], 'record')} sent on a lost connection "
                         "and not again (the collector may not have them)")
            if c.get("dropped"):
                line += f"; {_plural(c['dropped'], 'record')} not sent"
            if c.get("refused"):
                line += (f"; {_plural(c['refused'], 'ICMP port unreachable')} came back "
                         "(is the collector listening?)")
            if d is not None and d.transport == "udp":
                line += "; UDP cannot confirm delivery: compare with the collector's count"
            elif d is not None and d.transport == "file":
                if c.get("end_confirmed"):
                    line += "; all of it is in the file"
            elif c.get("end_confirmed"):
                line += "; the collector read it all and closed the connection"
            print(line, file=out)


class LoopTotals(Protocol):
    """What a replay sent over the loopback and what its collector made of it."""

    version: int
    sent_records: int
    sent_messages: int
    not_exportable: int
    dropped: int
    collect: CollectStats


def print_loopback_summary(res: LoopTotals, out: TextIO) -> None:
    """What went over loopback: sent, decoded, and what the protocol could not carry."""
    st = res.collect
    line = (f"loopback {EXPORT_PROTOCOLS[res.version]}: {res.sent_records} records sent in "
            f"{res.sent_messages} messages, {st.records} decoded")
    if res.not_exportable:
        line += f", {res.not_exportable} IPv6 records not exportable as NetFlow v5"
    if res.dropped:
        line += f", {res.dropped} not sent"
    print(line, file=out)
    bad = sum(st.malformed.values())
    if bad or st.lost_records or st.lost_packets:
        print(f"  collector: {bad} malformed, sequence gaps: {st.lost_records} records, "
              f"{st.lost_packets} v9 packets", file=out)
