"""rateLimit (and the default pacing of offline runs) spreads the messages out: a burst of
expired flows reaches the collector no faster than the limit, and nothing is left out."""

from __future__ import annotations

import time

from tests.export.flows import batch
from tests.export.harness import UdpSink, destination, run


def test_messages_are_spread_to_the_rate_limit() -> None:
    sink = UdpSink()
    rate = 400_000  # bytes per second: ~60 messages of ~1.4 KB take at least 0.2 s
    records = batch(2000, 4, seed=11)
    t0 = time.monotonic()
    rt = run([destination(sink, rate_limit=rate)], [records])
    elapsed = time.monotonic() - t0
    got = sink.datagrams()
    sink.close()
    st = rt.stats()[rt.destinations[0].name]
    assert sum(len(m) for m in got) == st["bytes"] and st["records"] == 2000
    # The pacer waits before each message until the previous ones have had their time: all
    # but the first message's bytes at the rate. Load on the machine only slows it further.
    assert elapsed >= (st["bytes"] - len(got[0])) / rate, (elapsed, st)


def test_rate_limit_zero_is_unpaced() -> None:
    """rateLimit 0 (as --rate 0 sets it): no pacing at all, not a rate of zero."""
    sink = UdpSink()
    rt = run([destination(sink, rate_limit=0)], [batch(2000, 4, seed=11)])
    st = rt.stats()[rt.destinations[0].name]
    assert len(sink.datagrams()) == st["messages"] > 60 and st["records"] == 2000
    sink.close()
