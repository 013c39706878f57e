"""Reading in a forked process must hand over exactly what reading in-process gives."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from probe import capture
from probe.capture import COLUMNS, PacketBatch, PacketSource, forked, open_offline
from probe.capture.forked import forked_batches, usable
from probe.config.model import ObservationPoint
from probe.errors import UserError
from tests.capture.helpers import PCAPS

FILES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))


def _sequential(path: str, batch_size: int, **kwargs: object) -> list[tuple[PacketBatch, dict]]:
    """Batches read in this process, growing from a sixteenth of ``batch_size`` as the child's
    do."""
    out = []
    with open_offline(path, **kwargs) as source:  # type: ignore[arg-type]
        for batch in source.batches(batch_size, first=max(1, batch_size // 16)):
            st = source.stats
            out.append((batch, (st.packets_read, st.packets_decoded, dict(st.ignored))))
    return out


@pytest.mark.parametrize(("batch_size", "piece"), [(7, None), (65536, None), (7, 2), (48, 5)])
@pytest.mark.parametrize("name", FILES)
def test_same_batches_and_counters_as_reading_in_process(name, batch_size, piece, monkeypatch):
    """Also when the child reads in pieces smaller than a batch (``_PIECE``, 16k packets on
    the bench), dividing the batch or not: the batches are still those of whole reads."""
    if piece is not None:
        monkeypatch.setattr(forked, "_PIECE", piece)
    path = str(PCAPS / name)
    reference = _sequential(path, batch_size, snap_length=96)
    with open_offline(path, snap_length=96) as source:
        got = list(forked_batches(source, batch_size))
        final = source.stats
    assert len(got) == len(reference)
    for (batch, stats), (ref, ref_stats) in zip(got, reference, strict=True):
        assert (stats.packets_read, stats.packets_decoded, dict(stats.ignored)) == ref_stats
        for column in COLUMNS:
            np.testing.assert_array_equal(getattr(batch, column), getattr(ref, column),
                                          err_msg=column)
    if reference:
        assert (final.packets_read, final.packets_decoded, dict(final.ignored)) == reference[-1][1]


def test_stopping_early_ends_the_child():
    with open_offline(str(PCAPS / "demo.pcap")) as source:
        it = forked_batches(source, 1)
        first, _ = next(it)
        assert len(first) == 1
        it.close()  # kills and reaps the reader; must not hang


@pytest.mark.parametrize(("batch_size", "piece"), [(4, None), (12, 5)])
def test_a_damaged_file_salvaged_in_the_child_reads_the_same(tmp_path, batch_size, piece,
                                                             monkeypatch):
    """In pieces, the salvaged packets may cut a batch short, never lose or repeat one."""
    if piece is not None:
        monkeypatch.setattr(forked, "_PIECE", piece)
    path = tmp_path / "cut.pcap"
    path.write_bytes((PCAPS / "demo.pcap").read_bytes()[:-5])  # the last record is damaged
    reference = _sequential(str(path), batch_size)
    with open_offline(str(path)) as source:
        got = list(forked_batches(source, batch_size))
        assert source.read_error
        final = source.stats
    if piece is None:
        assert [len(b) for b, _ in got] == [len(b) for b, _ in reference]
    assert (final.packets_read, final.packets_decoded) == reference[-1][1][:2]
    assert max(len(b) for b, _ in got) <= batch_size
    assert np.array_equal(PacketBatch.concat([b for b, _ in got]).ts_us,
                          PacketBatch.concat([b for b, _ in reference]).ts_us)


def test_an_error_in_the_reader_is_raised_after_the_batches_before_it():
    with open_offline(str(PCAPS / "demo.pcap")) as source:
        real = source.batches

        def failing(batch_size: int, first: int, **reading: object):
            yield next(real(batch_size))
            raise UserError("demo.pcap: capture failed: gone")

        source.batches = failing  # type: ignore[method-assign]
        it = forked_batches(source, 3)
        batch, _ = next(it)
        assert len(batch) == 3
        with pytest.raises(UserError, match="capture failed: gone"):
            next(it)


def test_only_offline_sources_are_forked_and_only_with_a_spare_core(monkeypatch):
    assert not usable(object())
    monkeypatch.setattr(forked, "spare_core", lambda: True)
    with open_offline(str(PCAPS / "demo.pcap")) as source:
        assert usable(source) is (threading.active_count() == 1)
        monkeypatch.setattr(forked, "spare_core", lambda: False)
        assert not usable(source)


def test_an_overloaded_machine_has_no_spare_core(monkeypatch):
    monkeypatch.setattr(forked, "_running", lambda: 1)
    monkeypatch.setattr(forked.os, "sched_getaffinity", lambda _: {0, 1})
    monkeypatch.setattr(forked.os, "getloadavg", lambda: (2.5, 0.0, 0.0))
    assert forked.spare_core()  # shared with other work: still worth it
    monkeypatch.setattr(forked.os, "getloadavg", lambda: (4.5, 0.0, 0.0))
    assert not forked.spare_core()
    monkeypatch.setattr(forked.os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    monkeypatch.setattr(forked, "_running", lambda: 5)
    assert not forked.spare_core()
    monkeypatch.setattr(forked, "_running", lambda: 1)
    monkeypatch.setattr(forked.os, "sched_getaffinity", lambda _: {0})
    monkeypatch.setattr(forked.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not forked.spare_core()


def test_batches_grow_from_first_to_batch_size():
    """260 packets, first 3: reads of 3, 12, 48, 100, 97 (each 4x, capped at 100)."""
    with open_offline(str(PCAPS / "demo.pcap")) as source:
        sizes = [len(b) for b in source.batches(100, first=3)]
    assert sizes == [3, 12, 48, 100, 97]
    with open_offline(str(PCAPS / "demo.pcap")) as source:
        assert [len(b) for b, _ in forked_batches(source, 100)] == [6, 24, 96, 100, 34]


def test_a_reader_started_early_is_stopped_by_close(monkeypatch):
    """``capture.open`` forks the reader as soon as the file is open; if anything fails before
    it is read, closing it must kill and reap the child and close the file."""
    import os

    op = ObservationPoint(name="p", observation_domain_id=1,
                          offline_file=str(PCAPS / "demo.pcap"))
    monkeypatch.setattr(forked, "usable", lambda source: False)
    # no spare core: the plain source, read in-process later
    plain = capture.open(op, fork=True, batch_size=4)
    assert isinstance(plain, PacketSource)
    plain.close()
    monkeypatch.setattr(forked, "usable", lambda source: True)
    reader = capture.open(op, fork=True, batch_size=4)
    assert isinstance(reader, forked.Reader)
    pid = reader._pid
    reader.close()
    reader.close()  # twice is harmless
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped
    assert list(reader.source.batches(4)) == []  # the file is closed


def test_only_the_decoded_columns_travel_and_the_rest_arrive_as_zeros():
    want = frozenset({"ts_us", "ip_version", "src_addr", "ip_len", "tcp_flags"})
    with open_offline(str(PCAPS / "vlan.pcap")) as source:
        source.columns = want
        reference = [b for b in source.batches(5, first=1)]
    with open_offline(str(PCAPS / "vlan.pcap")) as source:
        source.columns = want
        got = [b for b, _ in forked_batches(source, 5, first=1)]
    assert [len(b) for b in got] == [len(b) for b in reference]
    for batch, ref in zip(got, reference, strict=True):
        for column in COLUMNS:
            np.testing.assert_array_equal(getattr(batch, column), getattr(ref, column),
                                          err_msg=column)
    assert PacketBatch.concat(got).vlan_id.sum() == 0  # tagged, but the VID was not asked for
    assert PacketBatch.concat(got).ip_len.sum() > 0


def test_packet_sections_travel_as_wide_as_asked():
    """PSAMP sections: a width per source, in the slots as in process; a section not asked
    for arrives with no width, like any column not decoded."""
    want = frozenset({"ts_us", "ip_section", "ip_section_len", "frame_len"})
    widths = {"ip_section": 52, "frame_section": 30}  # frame_section is not decoded
    batches = []
    for fork in (False, True):
        with open_offline(str(PCAPS / "demo.pcap")) as source:
            source.columns, source.widths = want, widths
            batches.append(PacketBatch.concat(
                [b for b, _ in forked_batches(source, 64, first=8)] if fork
                else list(source.batches(64, first=8))))
    ref, got = batches
    assert got.ip_section.shape == (260, 52) and got.frame_section.shape == (260, 30)
    for column in COLUMNS:
        np.testing.assert_array_equal(getattr(got, column), getattr(ref, column),
                                      err_msg=column)
    assert got.ip_section[:, 0].tolist().count(0x45) > 100 and not got.frame_section.any()


def test_without_copying_each_batch_is_a_read_only_view_until_the_next():
    """copy=False: the same batches, each valid until the iteration is advanced."""
    reference = _sequential(str(PCAPS / "demo.pcap"), 16)
    with open_offline(str(PCAPS / "demo.pcap")) as source:
        reader = forked.Reader(source, 16, copy=False)
        seen = 0
        for (batch, _), (ref, _) in zip(reader, reference, strict=True):
            for column in COLUMNS:  # compared before advancing: after it, the slot is reused
                np.testing.assert_array_equal(getattr(batch, column), getattr(ref, column),
                                              err_msg=column)
            with pytest.raises(ValueError, match="read-only"):
                batch.ip_len[:1] = 0
            seen += 1
    assert seen == len(reference) > 3  # more batches than slots: slots were handed back
