"""Capture sources: pcap/pcapng files and live interfaces, read many packets per call.

pcapy-ng's ``next_batch`` walks the file or ring buffer in C and hands back one bytes object
plus a packed (sec, usec, offset, caplen) table, so Python touches each batch, not each packet.
Every failure a user can cause (missing file, not a capture, unknown link type, bad filter,
missing interface) becomes a one-line ``UserError`` when the source is opened.
"""

from __future__ import annotations

import logging
import os
import select
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pcapy

from probe.capture import linktypes as lt
from probe.capture.batch import DecodeStats, PacketBatch
from probe.capture.decode import decode_batch
from probe.errors import UserError

log = logging.getLogger(__name__)

_SKIP_CHUNK = 65536
_DIRECTIONS = {"ingress": pcapy.PCAP_D_IN, "egress": pcapy.PCAP_D_OUT, "both": pcapy.PCAP_D_INOUT}
# pcap_activate() failures (pcap/pcap.h) in the words a user needs.
_ACTIVATE_ERRORS = {
    -1: "generic libpcap error",
    -5: "no such interface",
    -6: "monitor mode not supported",
    -8: "permission denied (needs root or CAP_NET_RAW)",
    -9: "interface is not up",
    -11: "permission denied for promiscuous mode",
}


def _check_link(where: str, datalink: int) -> None:
    if datalink not in lt.SUPPORTED:
        names = ", ".join(f"{v} ({k})" for k, v in sorted(lt.SUPPORTED.items()))
        raise UserError(f"{where}: unsupported link type {datalink}; supported: {names}")


def _set_filter(reader: Any, where: str, bpf_filter: str | None) -> None:
    if bpf_filter:
        try:
            reader.setfilter(bpf_filter)
        except (pcapy.PcapError, pcapy.BPFError) as exc:
            raise UserError(f"{where}: bad BPF filter {bpf_filter!r}: {exc}") from None


class PacketSource:
    """One capture read in this process (a ``probe.capture.Source``): iterate ``batches()`` for
    decoded packets; ``stats`` says what was skipped."""

    def __init__(
        self,
        reader: Any,
        name: str,
        *,
        live: bool,
        snap_length: int | None = None,
        bpf_filter: str | None = None,
        timeout_ms: int = 100,
    ) -> None:
        self._reader = reader
        self.name = name
        self.live = live
        self.datalink: int = reader.datalink()
        self.stats = DecodeStats()
        # Set when a file ends in a damaged record: the packets before it were still decoded.
        self.read_error: str | None = None
        self._snap = snap_length
        self._filter = bpf_filter
        # The PacketBatch columns decoded (None: all); the rest are zeros. ``probe.capture.open``
        # sets what the pipeline's caches and selectors read (``probe.pipeline.columns_for_point``).
        self.columns: frozenset[str] | None = None
        # The tunnels whose inner packets are metered (the observation point's switches).
        self.tunnels: frozenset[str] = frozenset()
        self.widths: dict[str, int] = {}  # octets of each packet section decoded (none: 0)
        self._delivered = 0  # packets handed to the decoder, for resuming a damaged file
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._iterating = False
        self._timeout_ms = timeout_ms
        self._last_counters = {"received": 0, "dropped": 0, "ifdropped": 0}
        self._file = _file_of(reader) if not live else None  # (fd, size) of a capture file
        self._read = 0  # bytes of the file read, as of the last look
        self._poll = select.poll()
        if live:
            # libpcap's read timeout does not start until a packet arrives (pcap(3PCAP)), so a
            # blocking read on a quiet link never returns; read non-blocking and poll instead.
            reader.setnonblock(1)
            self._poll.register(reader.getfd(), select.POLLIN)

    def __enter__(self) -> PacketSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, data: bytes, packed: bytes) -> PacketBatch:
        meta = np.frombuffer(packed, dtype=np.uint32).reshape(-1, 4)
        if self._snap is not None:
            meta = meta.copy()
            np.minimum(meta[:, 3], self._snap, out=meta[:, 3])
        self._delivered += meta.shape[0]
        return decode_batch(data, meta, self.datalink, self.stats, self.columns, self.tunnels,
                            self.widths)

    def batches(self, batch_size: int = 65536, *, first: int | None = None,
                piece: int | None = None) -> Iterator[PacketBatch]:
        """Decoded batches in capture order.

        Offline: ends at end of file. Live: a read timeout yields an empty batch so callers can
        run their timers; iteration ends once ``close()`` was called. ``first``: the first
        read takes at most that many packets and each next one four times as many, up to
        ``batch_size``, so a consumer waiting for the first batch gets it sooner. ``piece``:
        each of those reads is made, decoded and yielded in pieces of at most this many
        packets (``read_sizes``).
        """
        with self._lock:
            if self._reader is None:
                return
            self._iterating = True
        timeout_s = self._timeout_ms / 1000
        last_yield = time.monotonic()
        sizes = read_sizes(batch_size, first, piece)
        try:
            while not self._closing.is_set():
                try:
                    data, packed = self._reader.next_batch(next(sizes))
                except pcapy.PcapError as exc:
                    if self.live:
                        raise UserError(f"{self.name}: capture failed: {exc}") from None
                    yield from self._salvage(str(exc), batch_size)
                    return
                if packed:
                    yield self._decode(data, packed)
                    last_yield = time.monotonic()
                elif not self.live:
                    return
                elif (
                    not self._poll.poll(self._timeout_ms)
                    or time.monotonic() - last_yield >= timeout_s
                ):
                    # A quiet link (or wake-ups without packets): let the caller run its timers.
                    yield PacketBatch.empty()
                    last_yield = time.monotonic()
        finally:
            with self._lock:
                self._iterating = False
                if self._closing.is_set():
                    self._release()

    def _salvage(self, error: str, batch_size: int) -> Iterator[PacketBatch]:
        """A damaged record ended the file; libpcap dropped the whole batch it was in.

        Reopen, skip what was delivered, and read one packet at a time up to the damage, so the
        packets before it are decoded exactly as with any other batch size.
        """
        self.read_error = error
        log.warning("%s: %s; decoding the packets before it", self.name, error)
        reader = pcapy.open_offline(self.name)
        _set_filter(reader, self.name, self._filter)
        skip = self._delivered
        while skip:
            _, packed = reader.next_batch(min(skip, _SKIP_CHUNK))
            skip -= len(packed) // 16
        pending: list[tuple[bytes, bytes]] = []
        while True:
            try:
                data, packed = reader.next_batch(1)
            except pcapy.PcapError:
                break
            if not packed:
                break
            pending.append((data, packed))
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            data = b"".join(d for d, _ in chunk)
            meta = np.frombuffer(b"".join(m for _, m in chunk), dtype=np.uint32).reshape(-1, 4)
            meta = meta.copy()
            meta[:, 2] = np.concatenate(([0], np.cumsum([len(d) for d, _ in chunk])[:-1]))
            yield self._decode(data, meta.tobytes())

    def progress(self) -> tuple[int, int | None] | None:
        """(bytes of the file read so far, its size): where libpcap's file offset is, which a
        reader process forked from this one shares. None for a live capture; the size is None
        for a pipe."""
        if self.live:
            return None
        if self._file is None:
            return self._read, None
        fd, size = self._file
        if self._reader is not None:
            try:
                self._read = os.lseek(fd, 0, os.SEEK_CUR)
            except OSError:  # a pipe: no offset
                self._file = None
        elif size is not None:
            self._read = size  # closed: read to the end, or stopped (then it no longer matters)
        return self._read, size

    def capture_stats(self) -> dict[str, int]:
        """libpcap's kernel counters for a live capture (zeros for a file)."""
        if self.live and self._reader is not None:
            try:
                received, dropped, ifdropped = self._reader.stats()
            except pcapy.PcapError:
                return dict(self._last_counters)
            self._last_counters = {
                "received": received, "dropped": dropped, "ifdropped": ifdropped
            }
        return dict(self._last_counters)

    def close(self) -> None:
        """Stop iteration; safe from another thread (the reading thread releases the handle)."""
        self._closing.set()
        with self._lock:
            if not self._iterating:
                self._release()

    def _release(self) -> None:
        if self._reader is not None:
            self.capture_stats()  # keep the final counters readable after close
            self._reader.close()
            self._reader = None


def _file_of(reader: Any) -> tuple[int, int | None] | None:
    """The capture file's descriptor and size (None: not a regular file, or unknown)."""
    try:
        fd = reader.getfd()
        st = os.fstat(fd)
    except (pcapy.PcapError, OSError, AttributeError):
        return None
    return fd, st.st_size if stat.S_ISREG(st.st_mode) else None


def read_sizes(batch_size: int, first: int | None = None, piece: int | None = None
               ) -> Iterator[int]:
    """Packets per read: batches of ``first``, four times as many, ... up to ``batch_size``
    (all of ``batch_size`` without ``first``), each split in reads of at most ``piece``."""
    size = min(batch_size, max(1, first or batch_size))
    step = max(1, piece or batch_size)
    while True:
        left = size
        while left:
            yield min(left, step)
            left -= min(left, step)
        size = min(batch_size, 4 * size)


def open_offline(
    path: str | os.PathLike[str], *, bpf_filter: str | None = None, snap_length: int | None = None
) -> PacketSource:
    """A pcap or pcapng file; ``snap_length`` cuts captured bytes as a live snaplen would."""
    path = os.fspath(path)
    try:
        reader = pcapy.open_offline(path)
    except pcapy.PcapError as exc:
        raise UserError(f"{path}: cannot read capture file: {exc}") from None
    except OSError as exc:  # pragma: no cover - pcapy reports these as PcapError
        raise UserError(f"{path}: cannot read capture file: {exc.strerror}") from None
    _check_link(path, reader.datalink())
    _set_filter(reader, path, bpf_filter)
    return PacketSource(reader, path, live=False, snap_length=snap_length, bpf_filter=bpf_filter)


def open_live(
    if_name: str,
    *,
    snap_length: int = 65535,
    promiscuous: bool = True,
    bpf_filter: str | None = None,
    buffer_size: int | None = None,
    timeout_ms: int = 100,
    fanout: tuple[int, int] | None = None,
    direction: str = "both",
) -> PacketSource:
    """A live interface; ``fanout`` is (group id, PACKET_FANOUT_* type) to share its load.

    ``direction`` is RFC 6728's ``ingress``/``egress``/``both`` (packets the interface
    received, sent, or either).
    """
    if direction not in _DIRECTIONS:
        raise UserError(f"{if_name}: direction must be ingress, egress or both, not {direction!r}")
    try:
        reader = pcapy.create(if_name)
        reader.set_snaplen(snap_length)
        reader.set_promisc(1 if promiscuous else 0)
        if buffer_size:
            reader.set_buffer_size(buffer_size)
        reader.set_timeout(timeout_ms)
        status = reader.activate()  # pcapy-ng returns libpcap's status instead of raising
    except pcapy.PcapError as exc:
        raise UserError(f"{if_name}: cannot capture on interface: {exc}") from None
    if status is not None and status < 0:
        why = _ACTIVATE_ERRORS.get(status, f"libpcap error {status}")
        raise UserError(f"{if_name}: cannot capture on interface: {why}")
    if status:
        log.warning("%s: libpcap warning %s while activating the capture", if_name, status)
    _check_link(if_name, reader.datalink())
    _set_filter(reader, if_name, bpf_filter)
    if direction != "both":
        try:
            reader.setdirection(_DIRECTIONS[direction])
        except pcapy.PcapError as exc:
            raise UserError(f"{if_name}: cannot capture {direction} only: {exc}") from None
    if fanout is not None:
        try:
            reader.set_fanout(*fanout)
        except (pcapy.PcapError, OSError) as exc:
            raise UserError(f"{if_name}: cannot join fanout group {fanout[0]}: {exc}") from None
    return PacketSource(reader, if_name, live=True, bpf_filter=bpf_filter, timeout_ms=timeout_ms)
