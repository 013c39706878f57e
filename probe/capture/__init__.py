"""Observation Point: capture sources (pcap/pcapng files, live interfaces) and packet decoding.

``open`` is the one way in: it opens what an Observation Point names and returns a ``Source``
(``probe.capture.point``); the pipeline is its only caller.
"""

from probe.capture.batch import COLUMNS, ColumnReads, DecodeStats, PacketBatch
from probe.capture.decode import decode_batch
from probe.capture.point import Source, open
from probe.capture.source import PacketSource, open_live, open_offline

__all__ = [
    "COLUMNS",
    "ColumnReads",
    "DecodeStats",
    "PacketBatch",
    "PacketSource",
    "Source",
    "decode_batch",
    "open",
    "open_live",
    "open_offline",
]
