"""Read and decode a capture file in a forked process while this one meters.

A replay is two halves of similar cost: reading + decoding, and metering + export. Threads do
not overlap them (both halves are numpy calls on 64k-row columns with Python in between, so
they take turns on the GIL), a second process does: the child iterates the already opened
source and writes each decoded batch's columns down a pipe; the parent reads them into fresh
arrays while the child decodes the next batch. Batches arrive in capture order, exactly as the
source yields them, so records do not change. With each batch comes a copy of the source's
decode counters as they were right after it, so statistics read while metering that batch
(the reliability options record's ignored-packet count) are what a sequential read shows.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from probe.capture.batch import COLUMNS, DecodeStats, PacketBatch
from probe.capture.source import PacketSource

_HEAD = struct.Struct("<I")
_PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ: what an unprivileged process may ask for by default
_SPECS = [(name, np.dtype(dt), shape) for name, (dt, shape) in COLUMNS.items()]


def spare_core() -> bool:
    """Whether a second busy process would get a core of its own.

    On a machine already busy the two halves would only take turns, and the pipe between them
    costs more than it saves: measured on 2 cores under load 3, 1.1 s forked against 0.9 s in
    one process per million packets. Busy means tasks other than this one runnable right now
    (three looks, a millisecond apart) or a load average of every core: the load average
    alone lags a minute behind, and a benchmark's own previous runs keep it near 1.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    if cpus < 2 or load >= cpus:
        return False
    for look in range(3):
        if look:
            time.sleep(0.001)
        if _running() > cpus - 1:
            return False
    return True


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


def _frame(out: IO[bytes], head: tuple[Any, ...]) -> None:
    data = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEAD.pack(len(data)))
    out.write(data)


def _child(source: PacketSource, batch_size: int, fd: int) -> None:
    """Runs in the forked process: never returns into the parent's stack."""
    status = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by closing the pipe
        with os.fdopen(fd, "wb", buffering=1 << 16) as out:
            try:
                for batch in source.batches(batch_size):
                    st = source.stats
                    _frame(out, ("batch", len(batch), st.packets_read, st.packets_decoded,
                                 dict(st.ignored)))
                    for name, _, _ in _SPECS:
                        out.write(memoryview(np.ascontiguousarray(getattr(batch, name))))
                st = source.stats
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


def forked_batches(source: PacketSource, batch_size: int
                   ) -> Iterator[tuple[PacketBatch, DecodeStats]]:
    """(batch, decode counters after it) from a child process reading ``source``.

    At the end ``source.stats`` and ``source.read_error`` are the child's final ones. Closing
    the iterator early stops the child.
    """
    r, w = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (ImportError, AttributeError, OSError):  # a smaller pipe only overlaps less
        pass
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(source, batch_size, w)
    os.close(w)
    finished = False
    try:
        with os.fdopen(r, "rb", buffering=1 << 16) as inp:
            size = bytearray(_HEAD.size)
            while True:
                _read_exact(inp, memoryview(size))
                head = bytearray(_HEAD.unpack(size)[0])
                _read_exact(inp, memoryview(head))
                kind, *rest = pickle.loads(head)
                if kind == "error":
                    finished = True
                    raise rest[0]
                if kind == "end":
                    source.stats = _stats(*rest[:3])
                    source.read_error = rest[3]
                    finished = True
                    return
                n = rest[0]
                cols = {}
                for name, dt, shape in _SPECS:
                    a = np.empty((n, *shape), dtype=dt)
                    if a.nbytes:
                        _read_exact(inp, memoryview(a).cast("B"))
                    cols[name] = a
                yield PacketBatch(**cols), _stats(*rest[1:])
    finally:
        if not finished:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
