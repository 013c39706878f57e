"""NetFlow v5 records: a fixed 48-octet layout filled from a RecordBatch's columns (vectorised).

Fields the layout does not meter stay zero (next hop, interfaces, AS numbers, masks). First and
Last are the first and last packet's milliseconds since the probe's start on the same grid as
the header's sysUptime (see ``probe.export.protocol``). ICMP carries type * 256 + code in the
destination port, as softflowd and Cisco do, so collectors show it where users look for it.
"""

from __future__ import annotations

import numpy as np

from probe.cache.records import RecordBatch, uptime_ms
from probe.export.templates import Chunk, cumulative
from probe.wire.messages import V5_FIELDS, V5_RECORD_LEN

# The v5 record's layout (``probe.wire.messages.V5_FIELDS``) as one big-endian numpy record.
V5_DTYPE = np.dtype([(name, {1: "u1", 2: ">u2", 4: ">u4"}[n]) for name, n, _ in V5_FIELDS])
assert V5_DTYPE.itemsize == V5_RECORD_LEN

_U32_MAX = np.uint64(0xFFFFFFFF)


def _first(cols: dict[str, np.ndarray], *names: str) -> np.ndarray | None:
    for n in names:
        if n in cols:
            return cols[n]
    return None


def encode_v5(batch: RecordBatch) -> Chunk:
    """Encode an IPv4 RecordBatch as v5 records (caller keeps IPv6 batches away)."""
    n = len(batch)
    c = batch.columns
    arr = np.zeros(n, dtype=V5_DTYPE)
    for dst, names in (("srcaddr", ("sourceIPv4Address",)),
                       ("dstaddr", ("destinationIPv4Address",)),
                       ("srcport", ("sourceTransportPort", "tcpSourcePort", "udpSourcePort")),
                       ("dstport", ("destinationTransportPort", "tcpDestinationPort",
                                    "udpDestinationPort")),
                       ("prot", ("protocolIdentifier",)), ("tos", ("ipClassOfService",))):
        col = _first(c, *names)
        if col is not None:
            arr[dst] = col
    flags = c.get("tcpControlBits")
    if flags is not None:
        arr["tcp_flags"] = flags.astype(np.uint16) & 0xFF
    icmp = c.get("icmpTypeCodeIPv4")
    if icmp is None and "icmpTypeIPv4" in c:
        icmp = c["icmpTypeIPv4"].astype(np.uint16) << 8
        if "icmpCodeIPv4" in c:
            icmp = icmp | c["icmpCodeIPv4"].astype(np.uint16)
    if icmp is not None:
        if "protocolIdentifier" in c:
            is_icmp = c["protocolIdentifier"] == 1
            arr["dstport"] = np.where(is_icmp, icmp, arr["dstport"])
        else:
            arr["dstport"] = icmp
    arr["dPkts"] = np.minimum(c["_packets"].astype(np.uint64), _U32_MAX)
    arr["dOctets"] = np.minimum(c["_octets"].astype(np.uint64), _U32_MAX)
    arr["First"] = uptime_ms(c["_start_us"], batch.sys_init_us)
    arr["Last"] = uptime_ms(c["_end_us"], batch.sys_init_us)
    return Chunk(batch.observation_domain_id, None, arr.tobytes(), V5_DTYPE.itemsize,
                 cumulative(c["_packets"]), cumulative(c["_octets"]))
