"""Probe and bundled collector in one process over loopback (``flowprobe replay`` without
``--export``): the exporter really encodes and sends, the collector really receives and decodes,
so what is shown is what a remote collector would see, and ``--verify`` can check it field by
field against the records the cache expired."""

from probe.loopback.loop import Expected, LoopResult, run_loopback
from probe.loopback.verify import Verdict, verify

__all__ = ["Expected", "LoopResult", "Verdict", "run_loopback", "verify"]
