"""Keep freed memory for reuse during a replay (glibc malloc tuning).

Each batch makes and frees the same large numpy temporaries, 64k-row columns of 64 KB to
512 KB. With glibc's defaults the larger ones are mmap'd fresh and unmapped when freed, and
the heap top is trimmed back to the kernel, so every batch faults its pages in again: 38-46
thousand minor faults and 0.2-0.3 s of system time on the 1M-packet bench trace. Raising the
mmap and trim thresholds keeps that memory in the heap for the next batch (29 thousand faults,
about 0.07 s less system time, 3 MB more peak RSS). A bounded run like ``replay`` can afford
it; elsewhere (musl, macOS) the call is simply not made.
"""

from __future__ import annotations

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
