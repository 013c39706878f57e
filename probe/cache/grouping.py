"""Group a batch's packets by flow key, keeping capture order inside each group.

Sorting the wide keys directly is slow, so each key is hashed to one uint64 and the hash is
sorted, with each group listing its packets in capture order. Hash collisions cannot merge two
flows: the grouped keys are compared with their neighbours, and if any group holds two
different keys the batch is regrouped by an exact lexicographic sort.

Keys come word-major, ``(words, packets)`` uint64 (``probe.cache.fields.key_matrix``), so every
pass over a key word reads one contiguous column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MUL = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


@dataclass(slots=True)
class Groups:
    order: np.ndarray  # packet indices, grouped by key, capture order within a group
    starts: np.ndarray  # offsets into ``order`` where each group begins
    keys: np.ndarray  # (groups, words) uint64: each group's key

    @property
    def count(self) -> int:
        return int(self.starts.shape[0])

    def prefix(self, b: int, extra: np.ndarray) -> tuple[Groups, np.ndarray]:
        """The grouping of the first ``b`` packets, and ``extra`` (one value per group) for its
        groups, without hashing or sorting again."""
        sizes = np.diff(np.append(self.starts, self.order.shape[0]))
        keep = self.order < b
        gid = np.repeat(np.arange(self.count), sizes)[keep]
        order = self.order[keep]
        if order.shape[0] == 0:
            return Groups(order, np.zeros(0, np.int64), self.keys[:0]), extra[:0]
        first = np.empty(order.shape[0], dtype=bool)
        first[0] = True
        np.not_equal(gid[1:], gid[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        kept = gid[starts]
        return Groups(order, starts, self.keys[kept]), extra[kept]

    def key_bytes(self) -> list[bytes]:
        """Each group's key as bytes, the flow table's dictionary key."""
        return key_rows(self.keys)


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


def _hash(words: np.ndarray) -> np.ndarray:
    """One multiply per key word, then a full avalanche: the multiply carries every bit of a
    word into the high bits that the grouping sorts on, and collisions only cost a regroup."""
    h = words[0] * _MUL
    for j in range(1, words.shape[0]):
        h ^= words[j]
        h *= _MUL
    h ^= h >> np.uint64(31)
    h *= _MIX
    h ^= h >> np.uint64(29)
    return h


def group(words: np.ndarray) -> Groups:
    """Group the packets whose keys are the columns of ``words`` (``(words, packets)``)."""
    n = words.shape[1]
    if n == 0:
        return Groups(np.zeros(0, np.int64), np.zeros(0, np.int64),
                      np.zeros((0, words.shape[0]), np.uint64))
    with np.errstate(over="ignore"):
        h = _hash(words)
    # The packet index replaces the hash's low bits: sort keys become unique, so a plain
    # (SIMD) sort of the values orders groups by hash and packets by capture order inside
    # each group, several times faster than a stable argsort; the index comes back out of
    # the low bits. Groups are the runs of equal high bits.
    bits = max(1, (n - 1).bit_length())
    low = np.uint64((1 << bits) - 1)
    sk = (h & ~low) | np.arange(n, dtype=np.uint64)
    sk.sort()
    order = (sk & low).astype(np.int64)
    hs = sk >> np.uint64(bits)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(hs[1:], hs[:-1], out=new[1:])
    # Verify: neighbours in one group must have equal keys, compared word by word.
    same = np.ones(n - 1, dtype=bool)
    for j in range(words.shape[0]):
        w = words[j][order]
        same &= w[1:] == w[:-1]
    if not np.all(same | new[1:]):  # a hash collision: regroup exactly
        order = np.lexsort(words[::-1])
        new[1:] = False
        for j in range(words.shape[0]):
            w = words[j][order]
            new[1:] |= w[1:] != w[:-1]
    starts = np.flatnonzero(new)
    return Groups(order=order, starts=starts, keys=take_keys(words, order[starts]))
