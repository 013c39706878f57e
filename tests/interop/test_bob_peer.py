"""BOB as another implementation computes it: Digest::JHash (Debian libdigest-jhash-perl),
Bob Jenkins' C code of RFC 5475 A.2 wrapped for Perl, on a thousand random keys.

Digest::JHash hashes with initval 0, reads octets as signed ``char`` (wrong from 0x80 up) and
returns 0 for the empty key, so the keys are printable and 1..100 octets long: every tail
length and up to eight 12-octet blocks.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from probe.selection import hashing


def _have_jhash() -> bool:
    if shutil.which("perl") is None:
        return False
    probe = subprocess.run(["perl", "-MDigest::JHash", "-e", "1"], capture_output=True,
                           check=False)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not _have_jhash(), reason="Digest::JHash not installed "
                       "(apt-get install libdigest-jhash-perl)"),
]

SCRIPT = 'use Digest::JHash; while (<STDIN>) { chomp; print Digest::JHash::jhash($_), "\\n" }'


def test_bob_equals_digest_jhash_on_random_printable_keys() -> None:
    rng = np.random.default_rng(2009)
    lengths = rng.integers(1, 101, 1000)
    keys = [bytes(rng.integers(0x20, 0x7F, n, dtype=np.uint8)) for n in lengths]
    res = subprocess.run(["perl", "-e", SCRIPT], input=b"\n".join(keys) + b"\n",
                         capture_output=True, timeout=60, check=True)
    theirs = [int(line) for line in res.stdout.split()]
    rows = np.zeros((len(keys), 100), dtype=np.uint8)
    for i, k in enumerate(keys):
        rows[i, :len(k)] = np.frombuffer(k, dtype=np.uint8)
    assert hashing.bob(rows, lengths, 0).tolist() == theirs
