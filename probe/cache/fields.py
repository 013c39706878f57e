"""Packet-derived Information Elements as a cache uses them: flow keys and first-packet values.

What each IE reads from a PacketBatch is ``probe.capture.fields.EXTRACT`` (selectors read
them too). A cache groups packets on the values of its key IEs and keeps, for a non-key use of
a key IE, the value of the flow's first packet. Values of the other IP family's IEs are zero,
so IPv4 and IPv6 packets never share a flow (the IP version is part of every key anyway, see
``KeyLayout``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from probe.branchless import keep
from probe.capture.batch import PacketBatch
from probe.capture.fields import EXTRACT, ICMP4, ICMP6, type_code, v4_address, v6_address
from probe.ie import SWAPPED_KEYS

__all__ = ["EXTRACT", "KeyLayout", "key_rows", "packet_values", "take_keys", "value_specs"]




def packet_values(batch: PacketBatch, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {n: EXTRACT[n](batch) for n in names}


def value_specs(names: tuple[str, ...]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """dtype and row shape of each packet-derived value column, probed on an empty batch."""
    empty = PacketBatch.empty(0)
    return {n: (EXTRACT[n](empty).dtype, EXTRACT[n](empty).shape[1:]) for n in names}


def take_keys(words: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The keys of packets ``idx`` as rows: ``(len(idx), words)`` uint64."""
    out = np.empty((idx.shape[0], words.shape[0]), dtype=np.uint64)
    for j in range(words.shape[0]):
        out[:, j] = words[j][idx]
    return out


def key_rows(keys: np.ndarray) -> list[bytes]:
    """Rows of ``(n, words)`` keys as bytes objects (one C loop through a void view)."""
    if keys.shape[0] == 0:
        return []
    rows = np.ascontiguousarray(keys, dtype="<u8").view(f"V{8 * keys.shape[1]}").ravel()
    return rows.tolist()


def _icmp_either(b: PacketBatch) -> np.ndarray:
    """icmpTypeCodeIPv4 | icmpTypeCodeIPv6: each is zero where the other may be set."""
    icmp = ((b.ip_version == 4) & (b.proto == ICMP4)) | ((b.ip_version == 6) & (b.proto == ICMP6))
    return keep(icmp, type_code(b))


class _Version:
    """What the address extractors read of a batch, for key values given back from keys."""

    __slots__ = ("ip_version",)

    def __init__(self, ip_version: np.ndarray) -> None:
        self.ip_version = ip_version


def _split_address(raw: np.ndarray, version: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = _Version(version)
    return v4_address(raw, b), v6_address(raw, b)  # type: ignore[arg-type]


def _split_icmp(raw: np.ndarray, version: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return keep(version == 4, raw), keep(version == 6, raw)


Split = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# Key IE pairs, one per IP family, that one column can stand for: each member is zero for the
# other family's packets and the IP version is in every key, so the merged column keys flows
# exactly as the pair does, in fewer bytes to hash and compare; ``split`` gives the pair's
# values back from the merged column and the IP version.
_MERGED: tuple[tuple[str, str, Callable[[PacketBatch], np.ndarray], Split], ...] = (
    ("sourceIPv4Address", "sourceIPv6Address", lambda b: b.src_addr, _split_address),
    ("destinationIPv4Address", "destinationIPv6Address", lambda b: b.dst_addr, _split_address),
    ("icmpTypeCodeIPv4", "icmpTypeCodeIPv6", _icmp_either, _split_icmp),
)


class _Part:
    """One column of the key: where it sits and how to read it back."""

    __slots__ = ("dtype", "extract", "names", "offset", "shape", "split", "trim", "width")

    def __init__(self, names: tuple[str, ...], extract: Callable[[PacketBatch], np.ndarray],
                 split: Split | None) -> None:
        probe = np.asarray(extract(PacketBatch.empty(0)))
        self.names, self.extract, self.split = names, extract, split
        self.dtype, self.shape = probe.dtype, probe.shape[1:]
        self.width = probe.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64))
        self.offset = 0
        self.trim = 0
        if self.width not in (1, 2, 4) and self.width % 8:
            self._pad()

    def _pad(self) -> None:
        """An octet column of 3, 5, 6 or 7 octets (an MPLS label section: 3) is zero-padded to
        4 or 8 in the key, so no column crosses a word; ``trim`` cuts it back in ``values``."""
        width, extract = self.width, self.extract
        padded = 4 if width < 4 else 8

        def wide(b: PacketBatch) -> np.ndarray:
            col = np.asarray(extract(b))
            out = np.zeros((col.shape[0], padded), dtype=np.uint8)
            out[:, :width] = col.reshape(col.shape[0], width).view(np.uint8)
            return out

        self.extract, self.trim = wide, width
        self.dtype, self.shape, self.width = np.dtype(np.uint8), (padded,), padded


class KeyLayout:
    """A cache's flow key, both ways: ``words`` builds every packet's key, ``values`` gives a
    flow's key IE values back from its key.

    A key is ``(words, packets)`` uint64, word-major, so hashing and comparing a key word reads
    one contiguous column. As bytes (``key_rows``) a key is its columns
    concatenated, widest alignment first (16-octet addresses, then 8-, 4-, 2- and 1-octet
    values), zero-padded to whole words: the default 5-tuple key is exactly five words. The IP
    version is always in the key: records are exported per IP version, so a flow never mixes
    families even when the layout has no address key. A flow keeps only its key, not one
    column per key IE: the IE values are read back from it when its record is built.
    """

    def __init__(self, key_names: tuple[str, ...]) -> None:
        self.key_names = key_names
        names = [name for name in key_names if name != "ipVersion"]
        parts = [_Part(("ipVersion",), EXTRACT["ipVersion"], None)]
        for v4, v6, merged, split in _MERGED:
            if v4 in names and v6 in names:
                names.remove(v4)
                names.remove(v6)
                parts.append(_Part((v4, v6), merged, split))
        parts += [_Part((name,), EXTRACT[name], None) for name in names]
        parts.sort(key=lambda part: -_alignment(part.width))  # stable
        at = 0
        for part in parts:
            part.offset = at
            at += part.width
        self.parts = parts
        self.words_per_key = -(-at // 8)
        self._version = parts[[p.names for p in parts].index(("ipVersion",))].offset

    def words(self, batch: PacketBatch) -> np.ndarray:
        """Every packet's key, ``(words, packets)`` uint64."""
        n = len(batch)
        words = np.zeros((self.words_per_key, n), dtype=np.uint64)
        for part in self.parts:
            col = np.ascontiguousarray(part.extract(batch)).view(np.uint8).reshape(n, part.width)
            at, w = part.offset, part.width
            # Every column is 1, 2, 4 or a multiple of 8 octets, so after the sort none crosses
            # a word: whole words (addresses, MACs) are copied, smaller values shifted in.
            if w % 8 == 0:
                words[at // 8:(at + w) // 8] = col.view("<u8").T
            else:
                value = col.view(f"<u{w}").ravel().astype(np.uint64)
                words[at // 8] |= value << np.uint64(8 * (at % 8))
        return words

    def biflow_words(self, batch: PacketBatch) -> tuple[np.ndarray, np.ndarray]:
        """Keys that are the same for both directions of a conversation (RFC 5103 biflows),
        and which way each packet goes: a packet's key is the smaller of its own and the one
        its answer would have (source and destination swapped, word by word from the first),
        and ``dir`` is 1 where that is the answer's."""
        own, other = self.words(batch), self.words(_Answer(batch))
        differ = own != other
        first = np.argmax(differ, axis=0)  # the first word that differs (0 if none does)
        cols = np.arange(own.shape[1])
        swapped = own[first, cols] > other[first, cols]
        return np.where(swapped, other, own), swapped.astype(np.uint8)

    def values(self, keys: np.ndarray, swapped: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
        """Each key IE's values (as ``EXTRACT`` gives them) for keys as rows, ``(k, words)``;
        with ``swapped`` (a biflow's orientation, ``biflow_words``'s ``dir`` of its first
        packet), each pair of ``SWAPPED_KEYS`` trades places where it is 1, so the values are
        the first packet's."""
        out = self._values(keys)
        if swapped is not None and swapped.any():
            turn = swapped.astype(bool)
            for one, other in SWAPPED_KEYS:
                if one in out and other in out:
                    a, b = out[one], out[other]
                    out[one], out[other] = np.where(_rows(turn, a), b, a), np.where(
                        _rows(turn, b), a, b)
        return out

    def _values(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        octets = np.ascontiguousarray(keys, dtype="<u8").view(np.uint8)
        version = octets[:, self._version].copy()
        out: dict[str, np.ndarray] = {}
        for part in self.parts:
            raw = np.ascontiguousarray(octets[:, part.offset:part.offset + part.width])
            value = raw.view(part.dtype).reshape(keys.shape[0], *part.shape)
            if part.trim:
                value = value[:, :part.trim]
            if part.split is not None:
                out[part.names[0]], out[part.names[1]] = part.split(value, version)
            else:
                out[part.names[0]] = value
        return {name: out[name] for name in self.key_names}


def _rows(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``mask`` (one per row) shaped to select whole rows of ``like``."""
    return mask.reshape(-1, *([1] * (like.ndim - 1)))


_ANSWER = {"src_addr": "dst_addr", "dst_addr": "src_addr", "src_port": "dst_port",
           "dst_port": "src_port", "src_mac": "dst_mac", "dst_mac": "src_mac"}


class _Answer:
    """A batch as its packets' answers would look: sources and destinations swapped."""

    def __init__(self, batch: PacketBatch) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return len(self._batch)

    def __getattr__(self, name: str) -> np.ndarray:
        return getattr(self._batch, _ANSWER.get(name, name))


def _alignment(width: int) -> int:
    """The widest word (8, 4, 2 or 1 octets) that a column of ``width`` octets is made of."""
    return next(s for s in (8, 4, 2, 1) if width % s == 0)
