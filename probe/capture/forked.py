"""Read and decode a capture file in a forked process while this one meters.

A replay is two halves of similar cost: reading + decoding, and metering + export. Threads do
not overlap them (both halves are numpy calls on 64k-row columns with Python in between, so
they take turns on the GIL), a second process does: the child iterates the already opened
source and copies each decoded batch's columns into one of two slots of shared memory, then
says so down a pipe; the parent copies them out into fresh arrays and hands the slot back while
the child decodes the next batch. (Sending the columns down the pipe itself needed five
hand-overs per batch through its 1 MB, each a wake-up that a busy machine delays: twice as
slow as one process at 5M packets.) Batches arrive in capture order, exactly as the
source yields them, so records do not change. With each batch comes a copy of the source's
decode counters as they were right after it, so statistics read while metering that batch
(the reliability options record's ignored-packet count) are what a sequential read shows.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import struct
import threading
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from probe.capture.batch import COLUMNS, DecodeStats, PacketBatch
from probe.capture.batch import shape as row_shape
from probe.capture.source import PacketSource, read_sizes

_HEAD = struct.Struct("<I")
_SLOTS = 2  # the child decodes one batch while the parent meters the other
_PIECE = 16384  # packets per libpcap read in the child (see _child)
_SPECS = [(name, np.dtype(dt), shape) for name, (dt, shape) in COLUMNS.items()]


def spare_core() -> bool:
    """Whether a second busy process can expect a share of a core of its own.

    Only a machine with one usable CPU, or one overloaded (a load average of twice its cores,
    or more tasks runnable right now than that), reads in one process: there the two halves
    would only take turns. On 2 cores shared with other work (load 2-3) the shared-memory
    hand-over still wins: 5M packets in 3.6-4.0 s forked against 4.7-6.9 s in one process.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return cpus >= 2 and load < 2 * cpus and _running() <= 2 * cpus


def _running() -> int:
    """Tasks runnable right now, this one included (``/proc/loadavg``'s fourth field)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return 1


def usable(source: Any) -> bool:
    """Fork only a real offline source, only while this process runs no other thread (a fork
    copies no threads, so a lock one of them held would stay held in the child), and only
    when a core is free for the child."""
    return (isinstance(source, PacketSource) and not source.live
            and hasattr(os, "fork") and threading.active_count() == 1 and spare_core())


def _zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only zero array in an anonymous mapping of its own: its pages are the kernel's
    zero page until written, which nothing does, so the columns a probe does not decode
    (12 MB of them for a 64k batch) cost no memory. From the heap, calloc would clear them."""
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    z = np.frombuffer(mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE), dtype,
                      count=size // dtype.itemsize).reshape(shape)
    z.flags.writeable = False
    return z


def _frame(out: IO[bytes], head: tuple[Any, ...]) -> None:
    data = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEAD.pack(len(data)) + data)
    out.flush()


def _layout(capacity: int, columns: frozenset[str] | None = None,
            widths: dict[str, int] | None = None
            ) -> tuple[list[tuple[str, np.dtype, tuple[int, ...], int, int]], int]:
    """(column, dtype, row shape, offset, values per row) in a slot for ``capacity`` packets,
    and the slot's size; every column starts on an 8-octet boundary. Only ``columns`` (the
    ones the source decodes) travel, packet sections as wide as ``widths`` says; the parent
    makes the others zeros, as the source would."""
    out, at = [], 0
    for name, dt, _ in _SPECS:
        if columns is not None and name not in columns:
            continue
        shape = row_shape(name, widths)
        per_row = int(np.prod(shape, dtype=np.int64))
        out.append((name, dt, shape, at, per_row))
        at += -(-capacity * per_row * dt.itemsize // 8) * 8
    return out, max(at, 8)


def _view(shm: mmap.mmap, dt: np.dtype, offset: int, n: int, shape: tuple[int, ...],
          per_row: int) -> np.ndarray:
    return np.frombuffer(shm, dtype=dt, count=n * per_row, offset=offset).reshape((n, *shape))


class _Slot:
    """The slot the child is filling: consecutive pieces of a batch, one after another."""

    def __init__(self, shm: mmap.mmap, layout: list, size: int, free_fd: int,
                 out: IO[bytes]) -> None:
        self.shm, self.layout, self.size, self.free_fd, self.out = shm, layout, size, free_fd, out
        self.slot = -1  # none taken
        self.rows = 0

    def add(self, piece: PacketBatch) -> None:
        """Copy a decoded piece after the rows already in the slot (taking a free one first)."""
        if self.slot < 0:
            token = os.read(self.free_fd, 1)  # a free slot; none: the parent is gone
            if not token:
                raise BrokenPipeError
            self.slot, self.rows = token[0], 0
        n = len(piece)
        if n:
            base, at = self.slot * self.size, self.rows
            for name, dt, shape, off, per_row in self.layout:
                _view(self.shm, dt, base + off, at + n, shape, per_row)[at:] = \
                    getattr(piece, name)
        self.rows += n

    def ship(self, counters: tuple[int, int, dict[str, int]]) -> None:
        """Hand the batch to the parent with the decode counters as they were after it."""
        _frame(self.out, ("batch", self.slot, self.rows, *counters))
        self.slot = -1


def _child(source: PacketSource, batch_size: int, first: int, data_fd: int, free_fd: int,
           shm: mmap.mmap) -> None:
    """Runs in the forked process: never returns into the parent's stack.

    libpcap reads at most ``_PIECE`` packets at a time, each piece decoded into the slot after
    the previous one until the slot holds the batch a read of the whole would have given. A
    64k-packet read made libpcap's and the decoder's buffers fault in 12.5k fresh pages on the
    1M bench trace (3.3k in 16k pieces), at 2-4 us a page on a VM, and 8 MB buffers do not
    stay in cache: pieces take about 0.02 s and 0.03 CPU-s off a 0.45 s replay of that trace.
    """
    status = 0
    layout, slot_size = _layout(batch_size, source.columns, source.widths)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by closing the pipe
        with os.fdopen(data_fd, "wb", buffering=1 << 12) as out:
            try:
                slot = _Slot(shm, layout, slot_size, free_fd, out)
                st = source.stats
                counters: tuple[int, int, dict[str, int]] = (0, 0, {})  # after the last piece
                batches = read_sizes(batch_size, first)  # what each batch reads
                target, began = next(batches), 0  # ... and what was read before this one
                for piece in source.batches(batch_size, first=first, piece=_PIECE):
                    if len(piece) > batch_size:  # would run into the next slot
                        raise RuntimeError(f"capture reader: {len(piece)} > {batch_size} rows")
                    if slot.slot >= 0 and slot.rows + len(piece) > batch_size:
                        slot.ship(counters)  # only after a damaged record (``_salvage``)
                        began = counters[0]
                    slot.add(piece)
                    counters = (st.packets_read, st.packets_decoded, dict(st.ignored))
                    if st.packets_read - began >= target:
                        slot.ship(counters)
                        began, target = st.packets_read, next(batches)
                if slot.slot >= 0:
                    slot.ship(counters)
                _frame(out, ("end", st.packets_read, st.packets_decoded, dict(st.ignored),
                             source.read_error))
            except BrokenPipeError:
                raise
            except BaseException as exc:  # raised again in the parent
                try:
                    pickle.dumps(exc)
                except Exception:  # an exception that cannot travel
                    exc = RuntimeError(f"capture reader: {exc!r}")
                _frame(out, ("error", exc))
    except BrokenPipeError:  # the parent stopped reading: it is done or gone
        pass
    except BaseException:  # nothing else to tell; the parent sees a short read
        status = 1
    finally:
        os._exit(status)


def _stats(read: int, decoded: int, ignored: dict[str, int]) -> DecodeStats:
    st = DecodeStats(read, decoded)
    st.ignored.update(ignored)
    return st


def _read_exact(inp: IO[bytes], buf: memoryview) -> None:
    if inp.readinto(buf) != len(buf):
        raise RuntimeError("capture reader process ended unexpectedly")


class Reader:
    """A child process reading ``source``, forked when the Reader is made: a ``Source``.

    Made when the capture is opened (``probe.capture.open``), the child reads and decodes while
    this process is still building its pipeline. ``batches()`` hands the batches over (iterate
    it once), ``stats`` is the decode counters as of the last one; iterating the Reader itself
    gives (batch, decode counters after it). At the end ``source.stats`` and
    ``source.read_error`` are the child's final ones. ``close()`` (or leaving the iteration
    early) stops the child. The first batch is ``first`` packets (default: a sixteenth of
    ``batch_size``), each next one four times as many up to ``batch_size``: metering starts
    on a small batch instead of waiting for a full one.

    ``copy=False`` (the pipeline's way): a batch's columns are read-only views of its shared
    memory slot, valid until the iteration is advanced, when the slot goes back to the child;
    copying them out was 2 ms per 64k batch of the main process's time. A third slot lets the
    child fill two while one is being metered. Collecting the batches (``list(reader)``) needs
    the default, ``copy=True``.
    """

    live = False

    def __init__(self, source: PacketSource, batch_size: int, *, first: int | None = None,
                 copy: bool = True) -> None:
        self.source = source
        self.batch_size = batch_size
        self._copy = copy
        self._stats = DecodeStats()  # as of the last batch handed out by batches()
        slots = _SLOTS if copy else _SLOTS + 1
        self._layout, self._slot_size = _layout(batch_size, source.columns, source.widths)
        # Columns not decoded arrive as views of one read-only zero array each, made once:
        # nothing downstream writes into a batch, and a write would raise instead of leaking.
        sent = {name for name, *_ in self._layout}
        self._zeros = {name: _zeros((batch_size, *row_shape(name, source.widths)), dt)
                       for name, dt, _ in _SPECS if name not in sent}
        self._shm = mmap.mmap(-1, slots * self._slot_size)  # anonymous, shared with the child
        r, w = os.pipe()
        free_r, self._free_w = os.pipe()
        os.write(self._free_w, bytes(range(slots)))
        self._pid = os.fork()
        if self._pid == 0:
            os.close(r)
            os.close(self._free_w)
            _child(source, batch_size, first or max(1, batch_size // 16), w, free_r, self._shm)
        os.close(w)
        os.close(free_r)
        self._inp = os.fdopen(r, "rb", buffering=1 << 12)
        self._finished = False
        self._closed = False

    @property
    def stats(self) -> DecodeStats:
        """The decode counters as of the last batch ``batches()`` handed out; the final ones
        once it ended."""
        return self._stats

    def batches(self, batch_size: int | None = None) -> Iterator[PacketBatch]:
        """The batches (of the ``batch_size`` the Reader was made with), counters in ``stats``."""
        if batch_size is not None and batch_size != self.batch_size:
            raise ValueError(f"this reader reads batches of {self.batch_size}, not {batch_size}")
        for batch, stats in self:
            self._stats = stats
            yield batch
        if self._finished:
            self._stats = self.source.stats

    def capture_stats(self) -> dict[str, int]:
        return self.source.capture_stats()

    def progress(self) -> tuple[int, int | None] | None:
        """Where the child is in the file: the source's offset, shared across the fork."""
        return self.source.progress()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[PacketBatch, DecodeStats]]:
        try:
            size = bytearray(_HEAD.size)
            while True:
                _read_exact(self._inp, memoryview(size))
                head = bytearray(_HEAD.unpack(size)[0])
                _read_exact(self._inp, memoryview(head))
                kind, *rest = pickle.loads(head)
                if kind == "error":
                    self._finished = True
                    raise rest[0]
                if kind == "end":
                    self.source.stats = _stats(*rest[:3])
                    self.source.read_error = rest[3]
                    self._finished = True
                    return
                slot, n = rest[0], rest[1]
                base = slot * self._slot_size
                cols = {name: _view(self._shm, dt, base + off, n, shape, per_row)
                        for name, dt, shape, off, per_row in self._layout}
                for name, col in cols.items():
                    if self._copy:
                        cols[name] = col.copy()
                    else:
                        col.flags.writeable = False
                cols.update({name: z[:n] for name, z in self._zeros.items()})
                if self._copy:
                    self._release(slot)
                try:
                    yield PacketBatch(**cols), _stats(*rest[2:])
                finally:
                    if not self._copy:
                        self._release(slot)
        finally:
            self.stop()

    def _release(self, slot: int) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):  # the child may be done already
            os.write(self._free_w, bytes((slot,)))

    def stop(self) -> None:
        """End the child (killed unless it already said it was done) and free its memory."""
        if self._closed:
            return
        self._closed = True
        os.close(self._free_w)
        self._inp.close()
        if not self._finished:
            os.kill(self._pid, signal.SIGKILL)
        os.waitpid(self._pid, 0)
        with contextlib.suppress(BufferError):  # a batch still viewing it: freed with the views
            self._shm.close()

    def close(self) -> None:
        """Stop the child and close the source (what closing a PacketSource does)."""
        self.stop()
        self.source.close()


def forked_batches(source: PacketSource, batch_size: int, *, first: int | None = None
                   ) -> Iterator[tuple[PacketBatch, DecodeStats]]:
    """(batch, decode counters after it) from a child process reading ``source``, forked at
    the first ``next()``. Closing the iterator early stops the child."""
    yield from Reader(source, batch_size, first=first)
