"""Collecting Process: the bundled collector decoding NetFlow v5/v9 and IPFIX.

``Decoder`` turns one message into records (pure bytes in, records out, bounded state);
``Collector`` runs it behind UDP/TCP sockets on a thread for in-process use (``replay``);
``probe.cli.collect`` is the ``flowprobe collect`` command.
"""

from probe.collect.collector import Collector
from probe.collect.decoder import Decoder
from probe.collect.flows import FlowBatch, Record
from probe.collect.limits import DEFAULT_LIMITS, Limits
from probe.collect.stats import CollectStats

__all__ = ["DEFAULT_LIMITS", "CollectStats", "Collector", "Decoder", "FlowBatch", "Limits",
           "Record"]
