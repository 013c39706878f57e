"""Reading a batch in pieces (``batches(piece=...)``, how the forked reader reads) must give
the packets, counters and read errors of reading it whole."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP

from probe.capture import COLUMNS, open_offline
from probe.capture.source import read_sizes
from tests.capture.helpers import PCAPS, ether
from tools.make_pcaps import write_pcap


def _read(path: Path, batch_size: int, first: int | None, piece: int | None = None
          ) -> tuple[list, int, int, dict, str | None]:
    with open_offline(str(path)) as source:
        batches = list(source.batches(batch_size, first=first, piece=piece))
        st = source.stats
        return batches, st.packets_read, st.packets_decoded, dict(st.ignored), source.read_error


def _same_packets(path: Path, batch_size: int, first: int | None, piece: int) -> list[int]:
    whole = _read(path, batch_size, first)
    pieces = _read(path, batch_size, first, piece)
    assert pieces[1:] == whole[1:]
    for column in COLUMNS:
        np.testing.assert_array_equal(
            np.concatenate([getattr(b, column) for b in pieces[0]]),
            np.concatenate([getattr(b, column) for b in whole[0]]), err_msg=column)
    return [len(b) for b in pieces[0]]


@pytest.mark.parametrize("name", sorted(p.name for p in PCAPS.glob("*.pcap*")))
def test_pieces_read_what_whole_reads_read(name: str) -> None:
    _same_packets(PCAPS / name, 7, 1, 3)


def test_each_read_is_cut_in_pieces() -> None:
    # reads of 2, 8, 10, 10, ... packets, each in pieces of at most 3 (demo.pcap is all IP)
    sizes = _same_packets(PCAPS / "demo.pcap", 10, 2, 3)
    assert sizes[:12] == [2, 3, 3, 2, 3, 3, 3, 1, 3, 3, 3, 1]


def test_a_damaged_file_read_in_pieces_is_salvaged_the_same(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    write_pcap(path, [(float(i), bytes(ether() / IP() / UDP(sport=i))) for i in range(40)], 1)
    path.write_bytes(path.read_bytes()[:-5])
    assert sum(_same_packets(path, 8, 2, 3)) == 39
    assert _read(path, 8, 2, 3)[4]  # the damage is reported


def test_read_sizes_grow_to_the_batch_and_split_in_pieces() -> None:
    assert list(islice(read_sizes(64, 4), 5)) == [4, 16, 64, 64, 64]
    assert list(islice(read_sizes(64, 4, 16), 9)) == [4, 16, 16, 16, 16, 16, 16, 16, 16]
    assert list(islice(read_sizes(50, 3, 16), 9)) == [3, 12, 16, 16, 16, 16, 16, 16, 2]
    assert list(islice(read_sizes(50), 2)) == [50, 50]
