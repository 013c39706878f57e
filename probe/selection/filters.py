"""Filtering selectors (RFC 5475 §6, RFC 6728 filterMatch and filterHash), batch at a time.

A filter decides from the packet alone, never from its position or a random draw, so its
decisions do not depend on how the stream is cut into batches, and two probes configured alike
decide alike on the same packets: that is what trajectory sampling (RFC 5475 §6.2.1.1) needs.

Hash input (RFC 5475 §6.2.4.1, the octets the RFC says BOB MUST be given), one row per packet:

* IPv4: header octets 4..7 (identification, flags, fragment offset), the source and the
  destination address, then ``ipPayloadSize`` octets of IP payload from ``ipPayloadOffset``;
* IPv6: the payload length (header octets 4..5), octets 10, 11, 14, 15 and 16 of the source and
  of the destination address (the RFC counts from 1: the host part), then the payload octets.

Both headers give 12 octets: the part that changes hop by hop (TTL, hop limit, checksum, ToS)
is left out. The IP payload is what follows the IPv4 header and its options or the IPv6 fixed
header (extension headers are payload, RFC 8200 §3). A packet with fewer payload octets than
configured is hashed on those it has (RFC 6728's ipPayloadSize), so the key is shorter; a
snapLength that cuts into the configured octets changes the key too, so probes meant to agree
need snap lengths that cover them. CRC-32 hashes the same octets as BOB. IPSX takes its own
fixed input (RFC 5475 A.1: header bits 32..63, source, destination, payload bits 32..63, each
a 32-bit word in network order) and is defined for IPv4 only: other packets are not selected.
"""

from __future__ import annotations

import numpy as np

from probe.branchless import pick
from probe.capture.batch import ColumnReads, PacketBatch
from probe.capture.fields import EXTRACT
from probe.config import model
from probe.ie import IPV4_ONLY, IPV6_ONLY
from probe.selection import hashing
from probe.selection.base import Counted

HEADER_OCTETS = 12
# Where the header part of the key comes from, in a row of [octets 4..7 of the IP header,
# source address (16), destination address (16)]; the IPv6 address octets are 10, 11, 14, 15
# and 16 counted from 1 (the host part).
_V6_HOST = np.array([9, 10, 13, 14, 15])
_FROM_V4 = np.r_[0:4, 4:8, 20:24]
_FROM_V6 = np.r_[0:2, 4 + _V6_HOST, 20 + _V6_HOST]
_PORTED = np.zeros(256, dtype=bool)
_PORTED[[6, 17, 132, 136]] = True  # TCP, UDP, SCTP, UDP-Lite
_ICMP = {4: 1, 6: 58}


def hash_input(batch: PacketBatch, offset: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every packet's BOB/CRC input as (rows of octets zero-padded, lengths)."""
    n = len(batch)
    word1 = batch.ip_word1.astype(">u4").view(np.uint8).reshape(n, 4)
    header = np.concatenate([word1, batch.src_addr, batch.dst_addr], axis=1)
    v6 = (batch.ip_version == 6)[:, None]
    keys = np.empty((n, HEADER_OCTETS + size), dtype=np.uint8)
    keys[:, :HEADER_OCTETS] = pick(v6, header[:, _FROM_V6], header[:, _FROM_V4])
    # payload_head is zero past what the packet has, so a short packet's row ends in zeros
    keys[:, HEADER_OCTETS:] = batch.payload_head[:, offset:offset + size]
    have = np.clip(batch.payload_head_len.astype(np.int64) - offset, 0, size)
    return keys, HEADER_OCTETS + have


def _be32(octets: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(octets).view(">u4").reshape(-1).astype(np.uint32)


def ipsx_input(batch: PacketBatch) -> tuple[np.ndarray, ...]:
    """IPSX's f1..f4 (RFC 5475 A.1) for every packet; meaningful for IPv4 rows only."""
    return (batch.ip_word1.astype(np.uint32), _be32(batch.src_addr[:, :4]),
            _be32(batch.dst_addr[:, :4]), _be32(batch.payload_head[:, 4:8]))


class FilterHashSelector(Counted):
    """filterHash: the packet's hash falls in one of the configured ranges."""

    def __init__(self, cfg: model.FilterHash) -> None:
        super().__init__(cfg.name)
        self.cfg = cfg
        self.lows = np.array([r.min for r in cfg.ranges], dtype=np.uint64)
        self.highs = np.array([r.max for r in cfg.ranges], dtype=np.uint64)
        # RFC 6728 state: the function's potential range
        self.output_range_min, self.output_range_max = 0, cfg.output_range_max
        self.digest_output = cfg.digest_output
        self.last_hashes = np.zeros(0, np.uint64)  # of the last batch, when digest_output

    def hashes(self, batch: PacketBatch) -> np.ndarray:
        """Each packet's hash value (IPSX: IPv6 packets get one too, never used)."""
        cfg = self.cfg
        if cfg.hash_function == "IPSX":
            return hashing.ipsx(*ipsx_input(batch))
        keys, lengths = hash_input(batch, cfg.ip_payload_offset, cfg.ip_payload_size)
        if cfg.hash_function == "CRC":
            return hashing.crc32(keys, lengths, cfg.initializer_value)
        return hashing.bob(keys, lengths, cfg.initializer_value)

    def select(self, batch: PacketBatch) -> np.ndarray:
        h = self.hashes(batch).astype(np.uint64)
        mask = ((h[:, None] >= self.lows) & (h[:, None] <= self.highs)).any(axis=1)
        if self.cfg.hash_function == "IPSX":
            mask &= batch.ip_version == 4
        if self.digest_output:  # the packet digest of the reports (RFC 5475 §6.2.5)
            self.last_hashes = h
        return self._account(mask)


def _present(name: str, batch: PacketBatch) -> np.ndarray | None:
    """Rows that have the IE at all (None: every row). A field a packet lacks reads as 0 in
    the cache's extractors; a filter must not select an IPv6 packet for sourceIPv4Address 0.
    """
    if name.startswith("icmp"):
        family = 4 if name in IPV4_ONLY else 6
        return ((batch.ip_version == family) & (batch.proto == _ICMP[family])
                & (batch.fragment != 2))
    if name in IPV4_ONLY:
        return batch.ip_version == 4
    if name in IPV6_ONLY:
        return batch.ip_version == 6
    if name.startswith(("tcp", "udp")) and name.endswith("Port"):
        return (batch.proto == (6 if name.startswith("tcp") else 17)) & (batch.fragment != 2)
    if name in ("sourceTransportPort", "destinationTransportPort"):
        return _PORTED[batch.proto] & (batch.fragment != 2)
    return None


class FilterMatchSelector(Counted):
    """filterMatch: the packet's value of one IE equals the configured value."""

    def __init__(self, cfg: model.FilterMatch) -> None:
        super().__init__(cfg.name)
        self.ie_name = cfg.ie_name
        self.value = (np.frombuffer(cfg.value, dtype=np.uint8) if isinstance(cfg.value, bytes)
                      else cfg.value)

    def select(self, batch: PacketBatch) -> np.ndarray:
        got = EXTRACT[self.ie_name](batch)
        mask = (got == self.value).all(axis=1) if got.ndim == 2 else got == self.value
        present = _present(self.ie_name, batch)
        return self._account(mask if present is None else mask & present)


def columns_read(selector: FilterHashSelector | FilterMatchSelector) -> frozenset[str]:
    """The PacketBatch columns a filter reads, found by running it on a batch that notes
    them (so the decoder is never asked for less than the filter uses)."""
    reads = ColumnReads()
    selector.select(reads)  # type: ignore[arg-type]
    selector.packets_observed = selector.packets_dropped = 0
    return frozenset(reads.names)
