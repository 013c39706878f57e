"""``flowprobe replay PCAP`` without ``--export``: show (and ``--verify``) the flows as the
bundled collector decodes them from the probe's own export over loopback."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from probe.collect.output import _FLAGS, _PROTO, JsonWriter, _endpoint, _time
from probe.collect.records import Record
from probe.loopback import LoopResult, run_loopback, verify

_PROTOCOL = {10: "IPFIX", 9: "NetFlow v9", 5: "NetFlow v5"}


def _records(decoded: list[dict[str, object]]) -> list[Record]:
    out = []
    for d in decoded:
        flow = dict(d)
        raw = flow.pop("raw", {})
        out.append(Record(flow, raw))  # type: ignore[arg-type]
    return out


def _start(r: Record) -> tuple:
    f = r.flow
    return (f.get("time_flow_start_ns") or 0, f.get("time_flow_end_ns") or 0,
            str(f.get("src_addr")), str(f.get("dst_addr")))


def _flags(v: object) -> str:
    return "".join(c if isinstance(v, int) and v >> i & 1 else "." for i, c in enumerate(_FLAGS))


def write_table(records: list[Record], out: TextIO) -> None:
    """The flows as nfdump lays them out, columns as wide as the widest value, by first seen."""
    head = ("first seen", "duration", "proto", "src", "", "dst", "flags", "packets", "bytes")
    rows = []
    packets = octets = 0
    for r in sorted(records, key=_start):
        f = r.flow
        start, end = f.get("time_flow_start_ns"), f.get("time_flow_end_ns")
        dur = f"{(end - start) / 1e9:.3f}" if isinstance(start, int) and isinstance(end, int) \
            else "-"
        proto = f.get("proto")
        pk, by = f.get("packets", 0), f.get("bytes", 0)
        packets += pk if isinstance(pk, int) else 0
        octets += by if isinstance(by, int) else 0
        dport = f.get("dst_port")
        if proto in (1, 58) and "icmp_type" in f:  # ICMP type.code where the port goes, as nfdump
            dport = f"{f['icmp_type']}.{f.get('icmp_code', 0)}"
        name = _PROTO.get(proto, str(proto)) if isinstance(proto, int) else "-"
        flags = _flags(f["tcp_flags"]) if proto == 6 and "tcp_flags" in f else ""
        rows.append((_time(start), dur, name, _endpoint(f.get("src_addr"), f.get("src_port")),
                     "->", _endpoint(f.get("dst_addr"), dport), flags, str(pk), str(by)))
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    right = {1, 7, 8}
    for row in (head, *rows):
        out.write(" ".join(x.rjust(w) if i in right else x.ljust(w)
                           for i, (x, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                  + "\n")
    out.write(f"total: {len(rows)} flows, {packets} packets, {octets} bytes\n")


def loopback_summary(res: LoopResult, out: TextIO) -> None:
    """What went over loopback: sent, decoded, and what the protocol could not carry."""
    st = res.collect
    line = (f"loopback {_PROTOCOL[res.version]}: {res.sent_records} records sent in "
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


def show_flows(args: argparse.Namespace) -> int:
    from probe.cli.replay import loopback_config, print_summary

    version, make_config = loopback_config(args)
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    table = fmt == "table"
    writer = JsonWriter(sys.stdout)
    shown: list[Record] = []

    def on_records(decoded: list[dict[str, object]]) -> None:
        recs = _records(decoded)
        if table:
            shown.extend(recs)  # sorted by flow start before printing: it is for people
        else:
            writer.write(recs)  # JSON lines stream in arrival order

    res = run_loopback(make_config, version, on_records=on_records, keep=args.verify,
                       batch_size=args.batch_size)
    if table:
        write_table(shown, sys.stdout)
    writer.close()
    sys.stdout.flush()
    if not args.quiet:
        print_summary(res.pipeline, sys.stderr)
        loopback_summary(res, sys.stderr)
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
        print(verdict.line(version), file=sys.stderr)
        for d in verdict.differences:
            print(d, file=sys.stderr)
        if not verdict.ok:
            status = 1
    return status
