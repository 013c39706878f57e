"""RFC 5475's hash functions: known values from implementations other than ours, and the
vectorised rounds against a plain transcription of the RFC's steps on awkward inputs.

Where the expected numbers come from:

* BOB: Digest::JHash 0.10 (Debian's libdigest-jhash-perl), Bob Jenkins' C code of the RFC's
  Appendix A.2 wrapped for Perl: ``perl -MDigest::JHash -e 'print Digest::JHash::jhash("abc")'``.
  It hashes with initval 0 and reads octets as signed ``char``, so it is right for octets
  below 0x80 only; ``tests/interop/test_bob_peer.py`` runs it live on random such keys.
* CRC-32: zlib, and the CRC-32 check value of "123456789" (0xCBF43926).
* IPSX: RFC 5475 A.1's ten steps, one Python integer at a time (below).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from probe.selection import hashing

M32 = 0xFFFFFFFF

# (key, BOB with initval 0) as Digest::JHash computes it
JHASH = [
    (b"a", 703514648),
    (b"abc", 622741395),
    (b"abcdefghijk", 0xE52B8E4C),  # 11: the longest tail
    (b"abcdefghijkl", 0x0B1B3EA5),  # 12: one block, then a round with no octets left
    (b"abcdefghijklmnopqrstuvwx", 0xD6638B78),  # 24
    (b"abcdefghijklmnopqrstuvwxy", 0x720B6730),  # 25
    (b"Four score and seven years ago", 1358053963),
    (b"hello world, this is flowprobe", 4149966567),
]


def matrix(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(k) for k in keys), default=0)
    rows = np.zeros((len(keys), width), dtype=np.uint8)
    for i, k in enumerate(keys):
        rows[i, :len(k)] = np.frombuffer(k, dtype=np.uint8)
    return rows, np.array([len(k) for k in keys])


def bob_steps(key: bytes, initval: int) -> int:
    """RFC 5475 A.2 one key at a time, with 32-bit registers as its text says."""

    def mix(a: int, b: int, c: int) -> tuple[int, int, int]:
        # each line "x -= y; x -= z; x ^= z >> s (or << s)" updates the register two before
        # the one updated last; rotating the triple after each line keeps that one at c
        for shift in (13, -8, 13, 12, -16, 5, 3, -10, 15):
            a, b, c = b, c, (a - b - c) & M32
            c ^= (b >> shift) if shift > 0 else (b << -shift) & M32
        return a, b, c

    a = b = 0x9E3779B9
    c = initval
    rest = key
    while len(rest) >= 12:
        a = (a + int.from_bytes(rest[0:4], "little")) & M32
        b = (b + int.from_bytes(rest[4:8], "little")) & M32
        c = (c + int.from_bytes(rest[8:12], "little")) & M32
        a, b, c = mix(a, b, c)
        rest = rest[12:]
    c = (c + len(key)) & M32
    tail = rest.ljust(12, b"\0")
    a = (a + int.from_bytes(tail[0:4], "little")) & M32
    b = (b + int.from_bytes(tail[4:8], "little")) & M32
    c = (c + (int.from_bytes(tail[8:11], "little") << 8)) & M32
    return mix(a, b, c)[2]


def ipsx_steps(f1: int, f2: int, f3: int, f4: int) -> int:
    """RFC 5475 A.1's ten steps as printed, on 32-bit integers."""
    v1 = f1 ^ f2
    v2 = f3 ^ f4
    h1 = (v1 << 8) & M32
    h1 ^= v1 >> 4
    h1 ^= v1 >> 12
    h1 ^= v1 >> 16
    h1 ^= (v2 << 6) & M32
    h1 ^= (v2 << 10) & M32
    h1 ^= (v2 << 14) & M32
    h1 ^= v2 >> 7
    return h1 & 0xFFFF


def test_bob_equals_jenkins_code_on_known_keys() -> None:
    rows, lengths = matrix([k for k, _ in JHASH])
    assert hashing.bob(rows, lengths, 0).tolist() == [v for _, v in JHASH]


def test_bob_steps_transcription_agrees_with_jenkins_code() -> None:
    # the slow reference used below is itself right where the C code can tell
    assert [bob_steps(k, 0) for k, _ in JHASH] == [v for _, v in JHASH]


@pytest.mark.parametrize("initval", [0, 1, 0x9E3779B9, M32])
def test_bob_on_every_length_and_octet(initval: int) -> None:
    """Lengths 0..100 (every tail size, up to eight blocks) in one batch, octets 0..255."""
    rng = np.random.default_rng(initval & 0xFFFF)
    keys = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in range(101)]
    keys += [bytes(n) for n in range(30)] + [b"\xff" * n for n in range(30)]
    rows, lengths = matrix(keys)
    assert hashing.bob(rows, lengths, initval).tolist() == [bob_steps(k, initval)
                                                             for k in keys]


def test_bob_ignores_octets_past_each_length() -> None:
    """Rows are zero-padded to the widest key; a key's value must not see the padding."""
    rows, lengths = matrix([b"abc", b"x" * 40])
    alone, _ = matrix([b"abc"])
    assert hashing.bob(rows, lengths, 5)[0] == hashing.bob(alone, np.array([3]), 5)[0]


@pytest.mark.parametrize("initval", [0, 1, 0xDEADBEEF, M32])
def test_crc32_equals_zlib(initval: int) -> None:
    rng = np.random.default_rng(3)
    keys = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in range(0, 90, 3)]
    keys.append(b"123456789")
    rows, lengths = matrix(keys)
    got = hashing.crc32(rows, lengths, initval).tolist()
    assert got == [zlib.crc32(k, initval) for k in keys]
    if initval == 0:
        assert got[-1] == 0xCBF43926


def test_ipsx_follows_the_rfc_steps() -> None:
    rng = np.random.default_rng(11)
    f = rng.integers(0, 2**32, (4, 500), dtype=np.uint64).astype(np.uint32)
    got = hashing.ipsx(*f).tolist()
    assert got == [ipsx_steps(*map(int, col)) for col in f.T]
    assert max(got) <= 0xFFFF
    # a hand-checkable one: only f1 has a bit, so h1 = v1<<8 ^ v1>>4 ^ v1>>12 ^ v1>>16
    one = [np.array([x], dtype=np.uint32) for x in (0x00010000, 0, 0, 0)]
    assert int(hashing.ipsx(*one)[0]) == (0x01000000 ^ 0x1000 ^ 0x10 ^ 0x1) & 0xFFFF
