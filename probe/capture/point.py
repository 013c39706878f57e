"""The one way into capture: ``open`` an Observation Point's source, which meets ``Source``.

Whatever reads the packets (a live interface, a file read in this process, a file read ahead
by a forked child) the pipeline sees the same few things, so ``flowprobe run`` and ``flowprobe
replay`` take one path: batches in capture order, the decode counters as of the last batch,
whether the source is live, how far into its file it is, and close. Which columns to decode
is the caller's to say (what its caches and selectors read, found by running their code on a
``ColumnReads`` stand-in batch); whether a forked child may read ahead is the caller's to
allow and this module's to decide (only a file, only with a core to spare, only with no other
thread).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from probe.batching import DEFAULT_BATCH_SIZE
from probe.capture import forked
from probe.capture.batch import DecodeStats, PacketBatch
from probe.capture.source import open_live, open_offline
from probe.config.model import ObservationPoint
from probe.errors import UserError

log = logging.getLogger(__name__)


class Source(Protocol):
    """An open capture, as the pipeline meters it."""

    live: bool

    @property
    def stats(self) -> DecodeStats:
        """Packets read, decoded and ignored (by reason) up to the last batch handed out."""
        ...

    def batches(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[PacketBatch]:
        """Decoded batches in capture order. A file ends at its end; a live capture yields an
        empty batch when the link is quiet (so timers run) and ends once closed."""
        ...

    def capture_stats(self) -> dict[str, int]:
        """libpcap's received/dropped/ifdropped counters (zeros for a file)."""
        ...

    def progress(self) -> tuple[int, int | None] | None:
        """(bytes of the file read, its size or None when unknown); None when live."""
        ...

    def close(self) -> None:
        """Stop reading and release the capture (safe from another thread)."""
        ...


def open(op: ObservationPoint, *, columns: frozenset[str] | None = None, fork: bool = False,
         batch_size: int = DEFAULT_BATCH_SIZE, buffer_size: int | None = None,
         fanout: tuple[int, int] | None = None, widths: dict[str, int] | None = None
         ) -> Source:
    """The source ``op`` names: its offlineFile, else its first interface.

    ``columns``: the PacketBatch columns to decode (None: all; the others are zeros).
    ``widths``: the octets of each packet section decoded (PSAMP packet reports).
    ``fork``: a file may be read ahead by a child process (``probe.capture.forked``), started
    now, when that can help. ``buffer_size`` and ``fanout`` apply to live interfaces only
    (``flowprobe run`` options). Every failure a user can cause is a one-line UserError.
    """
    if op.offline_file:
        # snapLength is a capture setting: a file is read as it was captured (its frames may
        # exceed the 65535 default, e.g. BIG TCP, whose IP length field says 0)
        source = open_offline(op.offline_file, bpf_filter=op.bpf_filter)
        source.columns = columns
        source.tunnels = frozenset(op.tunnels)
        source.widths = dict(widths or {})
        if fork and forked.usable(source):
            return forked.Reader(source, batch_size, copy=False)
        return source
    if not op.if_names:
        raise UserError(f"observation point {op.name}: neither offlineFile nor ifName is set")
    source = open_live(
        op.if_names[0],
        snap_length=op.snap_length,
        promiscuous=op.promiscuous,
        bpf_filter=op.bpf_filter,
        direction=op.direction,
        buffer_size=buffer_size,
        fanout=fanout,
    )
    source.columns = columns
    source.tunnels = frozenset(op.tunnels)
    source.widths = dict(widths or {})
    log.info("observation point %s: capturing on %s", op.name, op.if_names[0])
    return source
