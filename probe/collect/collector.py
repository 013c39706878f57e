"""``Collector``: the bundled collector as an in-process object (what ``replay`` uses).

Runs the UDP/TCP loop on a background thread and hands the decoded ``Record``s to the caller:
``flow`` is the JSON line, ``raw`` maps IE names to plain values (the same values a
``RecordBatch`` row holds) so ``replay --verify`` can compare every field. ``records()`` gives
each as one dict (the JSON-line fields plus ``raw``), for tests and scripts.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from probe.collect.decoder import Decoder
from probe.collect.flows import FlowBatch, Record
from probe.collect.limits import DEFAULT_LIMITS, Limits
from probe.collect.server import CollectorLoop, Endpoint, parse_listen
from probe.collect.stats import CollectStats

_END = object()


class Collector:
    """Usage::

        with Collector(["udp://127.0.0.1:0"]) as c:
            send_to(c.port)
            c.stop()                 # drains what already arrived
            flows = list(c.records())
    """

    def __init__(self, listen: list[str] | tuple[str, ...] = ("udp://127.0.0.1:0",),
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self.decoder = Decoder(limits)
        self._loop = CollectorLoop([parse_listen(u) for u in listen], self._arrived, self.decoder)
        self._thread: threading.Thread | None = None
        self._last_record = time.monotonic()
        self.bound: list[Endpoint] = []

    def _arrived(self, batches: list[FlowBatch]) -> None:
        self._last_record = time.monotonic()
        for b in batches:
            self._queue.put(b)

    @property
    def stats(self) -> CollectStats:
        return self.decoder.stats

    @property
    def port(self) -> int:
        """The first endpoint's bound port (useful after binding port 0)."""
        return self.bound[0].port

    def start(self) -> Collector:
        self.bound = self._loop.bind()
        self._thread = threading.Thread(target=self._run, name="flowprobe-collector", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._loop.run()
            self.decoder.finish()
        finally:
            self._loop.close()
            self._queue.put(_END)

    def wait_idle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no record has arrived for ``quiet`` seconds (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if time.monotonic() - self._last_record >= quiet:
                return
            time.sleep(min(quiet / 3, 0.05))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after decoding everything the kernel already holds; returns when the loop ended."""
        if self._thread is None:
            return
        self._loop.stop()
        self._thread.join(timeout)

    def batches(self, timeout: float | None = None) -> Iterator[FlowBatch]:
        """Decoded batches until the collector has stopped and drained (or ``timeout`` of
        quiet).

        ``timeout`` None waits for ``stop()``; a number ends the iteration after that many
        seconds without a batch.
        """
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return
            if item is _END:
                self._queue.put(_END)  # later iterations end too
                return
            assert isinstance(item, FlowBatch)
            yield item

    def decoded(self, timeout: float | None = None) -> Iterator[Record]:
        """``batches``, one ``Record`` per flow."""
        for b in self.batches(timeout):
            yield from b.records()

    def take(self) -> list[Record]:
        """What was decoded so far, without waiting."""
        return list(self.decoded(timeout=0))

    def records(self, timeout: float | None = None) -> Iterator[dict[str, object]]:
        """``decoded``, each record as one dict: its JSON-line fields plus ``raw``."""
        for r in self.decoded(timeout):
            yield dict(r.flow, raw=r.raw)

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
