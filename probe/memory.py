"""Memory habits of a bounded run: no cyclic collection during start-up, and freed batch
memory kept for reuse (glibc malloc tuning).

Each batch makes and frees the same large numpy temporaries, 64k-row columns of 64 KB to
512 KB. With glibc's defaults the larger ones are mmap'd fresh and unmapped when freed, and
the heap top is trimmed back to the kernel, so every batch faults its pages in again: 38-46
thousand minor faults and 0.2-0.3 s of system time on the 1M-packet bench trace. Raising the
mmap and trim thresholds keeps that memory in the heap for the next batch (29 thousand faults,
about 0.07 s less system time, 3 MB more peak RSS). A bounded run like ``replay`` can afford
it; elsewhere (musl, macOS) the call is simply not made.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc <malloc.h>


def keep_freed_memory() -> bool:
    """Tune glibc malloc for batch reuse; False where there is no glibc mallopt."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 64 << 20) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, 256 << 20) == 1
    ok &= mallopt(_M_TOP_PAD, 64 << 20) == 1
    return bool(ok)


@contextmanager
def starting_up() -> Iterator[None]:
    """Cyclic garbage collection off while a command starts, then on again.

    Start-up (numpy, the modules, the config: yangson and pydantic make tens of thousands of
    objects) makes objects that nearly all live to the end, so collecting cycles during it is
    wasted work on the way to the first packet: 0.05 CPU-s of ``flowprobe run -c`` on a small
    config. What exists when the block ends is frozen out of later collections.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()

