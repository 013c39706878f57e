"""tcpdump's own test captures: odd link types, broken files, hostile headers.

Each one either fails to open with a one-line UserError or decodes whole without an exception,
with the skip counts adding up.
"""

from __future__ import annotations

import pytest

from probe.capture import PacketBatch, open_offline
from probe.errors import UserError
from tests.helpers import CORPUS

FILES = sorted(p.name for p in CORPUS.iterdir()) if CORPUS.is_dir() else []


def test_the_corpus_is_there() -> None:
    """Without it the corpus tests below (and softflowd's) would pass by testing nothing."""
    assert len(FILES) > 400, f"{CORPUS}: the tcpdump corpus from shared/ is missing"


@pytest.mark.skipif(not FILES, reason=f"{CORPUS} not present")
@pytest.mark.parametrize("name", FILES)
def test_opens_cleanly_or_decodes_whole(name):
    path = str(CORPUS / name)
    try:
        source = open_offline(path)
    except UserError as exc:
        assert len(exc.problems) == 1 and exc.problems[0].startswith(path + ": ")
        return
    with source:
        batch = PacketBatch.concat(list(source.batches(4096)))
        stats = source.stats
    assert stats.packets_read == stats.packets_decoded + sum(stats.ignored.values())
    assert len(batch) == stats.packets_decoded
    assert set(batch.ip_version.tolist()) <= {4, 6}
    assert (batch.ip_len >= 20).all()
