"""Observation Point: capture sources (pcap/pcapng files, live interfaces) and packet decoding."""

from probe.capture.batch import COLUMNS, DecodeStats, PacketBatch
from probe.capture.decode import decode_batch
from probe.capture.source import PacketSource, open_live, open_observation_point, open_offline

__all__ = [
    "COLUMNS",
    "DecodeStats",
    "PacketBatch",
    "PacketSource",
    "decode_batch",
    "open_live",
    "open_observation_point",
    "open_offline",
]
