"""Broken packets are counted by reason and skipped; broken files end cleanly."""

from __future__ import annotations

import numpy as np
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP

from probe.capture import COLUMNS, DecodeStats, PacketBatch, decode_batch
from tests.capture.helpers import PCAPS, check_invariant, decode_frames, ether, read_all
from tools.make_pcaps import write_pcap


def test_committed_malformed_reasons():
    batch, stats = read_all(PCAPS / "malformed.pcap")
    check_invariant(stats)
    assert stats.packets_read == 10
    assert stats.ignored == {
        "too-short": 3,
        "bad-header-length": 2,
        "bad-version": 1,
        "non-ip": 1,
    }
    # The well-formed controls at both ends survive, in order, and so does the MPLS-labelled
    # packet before the last (once counted as unsupported-link, opened since issue 17).
    assert batch.ts_us.tolist() == [1_700_000_000_000_000, 1_700_000_008_000_000,
                                    1_700_000_009_000_000]
    assert batch.mpls_labels[:, 0].tolist() == [0, 0x00010140, 0]


def test_ipv4_header_cut_by_snaplen_is_too_short(tmp_path):
    frame = ether() / IP(src="192.0.2.1", options=b"\x01" * 20) / TCP()
    batch, stats = decode_frames(tmp_path, [frame], snaplen=14 + 30)
    assert len(batch) == 0 and stats.ignored == {"too-short": 1}


def test_vlan_tag_stack_deeper_than_supported(tmp_path):
    frame = bytes(ether(type=0x8100)) + b"\x00\x01\x81\x00" * 4 + b"\x00\x01\x08\x00"
    frame += bytes(IP() / UDP())
    _, stats = decode_frames(tmp_path, [frame])
    assert stats.ignored == {"unsupported-link": 1}


def test_non_ip_and_empty_frames(tmp_path):
    frames = [ether() / ARP(psrc="192.0.2.1", pdst="192.0.2.2"), b"", ether(type=0x88CC) / b"l"]
    _, stats = decode_frames(tmp_path, frames)
    assert stats.ignored == {"non-ip": 2, "too-short": 1}


def test_garbage_never_raises():
    """Random bytes in every link type: no exception, and the stats add up."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(0, 120, size=2000)
    buf = rng.integers(0, 256, size=int(sizes.sum()), dtype=np.uint8)
    # Make a third of them look like IPv4/IPv6 so the deeper stages get garbage too.
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    meta = np.zeros((sizes.size, 4), dtype=np.uint32)
    meta[:, 2], meta[:, 3] = offsets, sizes
    for linktype in (0, 1, 12, 101, 108, 113, 228, 229, 276):
        data = buf.copy()
        for k in range(0, sizes.size, 3):
            if sizes[k] > 14:
                data[offsets[k] + 12 : offsets[k] + 14] = (0x08, 0x00) if k % 2 else (0x86, 0xDD)
                data[offsets[k] + 14] = 0x45 if k % 2 else 0x60
        stats = DecodeStats()
        batch = decode_batch(data.tobytes(), meta, linktype, stats)
        check_invariant(stats)
        assert len(batch) == stats.packets_decoded
        assert set(np.unique(batch.ip_version).tolist()) <= {4, 6}


def test_truncated_file_decodes_packets_before_the_damage(tmp_path):
    path = tmp_path / "cut.pcap"
    frames = [(float(i), bytes(ether() / IP() / UDP(sport=i, dport=9))) for i in range(1, 11)]
    write_pcap(path, frames, 1)
    path.write_bytes(path.read_bytes()[:-10])  # the last record loses its tail
    for size in (1, 4, 65536):
        batch, stats = read_all(path, batch_size=size)
        assert batch.src_port.tolist() == list(range(1, 10)), size
        check_invariant(stats)


def test_truncated_file_reports_the_damage(tmp_path):
    from probe.capture import open_offline

    path = tmp_path / "cut.pcap"
    write_pcap(path, [(0.0, bytes(ether() / IP() / UDP()))] * 3, 1)
    path.write_bytes(path.read_bytes()[:-5])
    with open_offline(str(path)) as source:
        assert sum(len(b) for b in source.batches()) == 2
        assert source.read_error and "truncated" in source.read_error


def test_garbage_decodes_the_same_in_any_split():
    """Cutting a batch anywhere changes nothing: rows and skip counts are per packet."""
    rng = np.random.default_rng(11)
    sizes = rng.integers(0, 100, size=600)
    data = rng.integers(0, 256, size=int(sizes.sum()), dtype=np.uint8)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    for k in range(0, sizes.size, 2):  # every other packet starts like Ethernet + IPv4
        if sizes[k] > 15:
            data[offsets[k] + 12 : offsets[k] + 15] = (0x08, 0x00, 0x45)
    meta = np.zeros((sizes.size, 4), dtype=np.uint32)
    meta[:, 2], meta[:, 3] = offsets, sizes
    whole_stats = DecodeStats()
    whole = decode_batch(data.tobytes(), meta.tobytes(), 1, whole_stats)
    cuts = sorted(rng.choice(np.arange(1, sizes.size), size=20, replace=False).tolist())
    parts, part_stats = [], DecodeStats()
    for lo, hi in zip([0, *cuts], [*cuts, sizes.size], strict=True):
        chunk = meta[lo:hi].copy()
        start = int(chunk[0, 2])
        chunk[:, 2] -= start
        end = start + int(sizes[lo:hi].sum())
        parts.append(decode_batch(data[start:end].tobytes(), chunk, 1, part_stats))
    joined = PacketBatch.concat(parts)
    assert part_stats == whole_stats
    assert whole_stats.packets_decoded > 0
    for column in COLUMNS:
        np.testing.assert_array_equal(getattr(joined, column), getattr(whole, column), column)
