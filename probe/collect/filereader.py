"""fileReader (RFC 6728 §4.6, RFC 5655): the IPFIX Messages of an IPFIX File, in file order.

An IPFIX File is the messages of one Transport Session written one after another, so it is
read as one: Templates live until the file ends (no UDP lifetime, RFC 5655 §7.1), sequence
numbers are checked per observation domain as over TCP, and what is still held for a Template
when the file ends is counted as never decoded. A file compressed as a whole (gzip or bzip2,
RFC 5655 §8.2) is read through the decompressor.

A file carries no receive time and no exporter address: each record's ``time_received_ns`` is
its message's Export Time (when the message was written) and ``sampler_address`` is empty.
The messages are framed by their length field; a message that is cut short (a file still
being written, a copy that stopped) or that is not IPFIX ends the read, and ``FileReport``
says where.
"""

from __future__ import annotations

import bz2
import gzip
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from probe.collect.decoder import Decoder
from probe.collect.flows import FlowBatch
from probe.errors import UserError
from probe.wire.messages import IPFIX_HEADER, IPFIX_VERSION

_HEAD = struct.Struct(">HHI")  # version, length, export time: the start of an IPFIX header
_READ = 1 << 20


@dataclass(slots=True)
class FileReport:
    """What one file gave: messages and octets read, and why reading stopped early (or None)."""

    path: str
    messages: int = 0
    octets: int = 0
    problem: str | None = None
    reason: str = ""  # the malformed-counter reason of ``problem``

    def stop(self, reason: str, problem: str) -> None:
        self.reason, self.problem = reason, problem


def _open(path: str) -> IO[bytes]:
    try:
        f = open(path, "rb", buffering=_READ)  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise UserError(f"{path}: cannot read IPFIX file: {exc.strerror or exc}") from None
    magic = f.peek(3)[:3]
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    if magic == b"BZh":
        return bz2.BZ2File(f)  # type: ignore[return-value]
    return f


def messages(path: str, report: FileReport) -> Iterator[bytes]:
    """The file's messages; stops (noting why in ``report``) at the first that is not whole."""
    with _open(path) as f:
        while True:
            try:
                head = f.read(IPFIX_HEADER.size)
            except (OSError, EOFError) as exc:  # a damaged compressed stream
                report.stop("file_damaged", f"cannot read past octet {report.octets}: {exc}")
                return
            if not head:
                return
            where = f"message {report.messages + 1} at octet {report.octets}"
            if len(head) < IPFIX_HEADER.size:
                report.stop("file_cut_short",
                            f"{where} is cut short ({len(head)} octets of its header)")
                return
            version, length, _ = _HEAD.unpack_from(head)
            if version != IPFIX_VERSION:
                report.stop("file_not_ipfix",
                            f"{where} is not IPFIX (version {version}, not 10)" if report.messages
                            else f"not an IPFIX File: its first message has version {version}")
                return
            if length < IPFIX_HEADER.size:
                report.stop("file_bad_length",
                            f"{where} states a length of {length}, less than its header")
                return
            body = f.read(length - IPFIX_HEADER.size)
            if len(body) < length - IPFIX_HEADER.size:
                got = IPFIX_HEADER.size + len(body)
                report.stop("file_cut_short", f"{where} is cut short: {got} of its {length} "
                                              "octets")
                return
            report.messages += 1
            report.octets += length
            yield head + body


FLUSH_RECORDS = 16_384  # decode the queued Data Sets when this many records wait


def read_file(path: str, decoder: Decoder, on_batches: Callable[[list[FlowBatch]], None]
              ) -> FileReport:
    """Decode every message of the IPFIX File ``path`` (one Transport Session) into
    ``on_batches``; a file that cannot be opened is a UserError, one that stops early is
    said in the report and counted (``file_cut_short``, ``file_not_ipfix``...)."""
    report = FileReport(path)
    session = ("file", path)

    def flush() -> None:
        batches = decoder.flush()
        if batches:
            on_batches(batches)

    for msg in messages(path, report):
        export_secs = _HEAD.unpack_from(msg)[2]
        decoder.feed(msg, "", session, received_ns=export_secs * 1_000_000_000)
        if decoder.pending_records >= FLUSH_RECORDS:
            flush()
    flush()
    decoder.close_session(session)
    if report.problem is not None:
        decoder.stats.bad(report.reason)
    return report
