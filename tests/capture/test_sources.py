"""Opening sources: observation points, timestamp precision, snap length, odd files."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP

from probe import capture
from probe.capture import open_offline
from probe.config.model import ObservationPoint
from probe.errors import UserError
from tests.capture.helpers import PCAPS, ether, read_all
from tools.make_pcaps import pad4, pcapng_block


def test_observation_point_offline_file():
    op = ObservationPoint(name="op", observation_domain_id=1, offline_file=str(PCAPS / "vlan.pcap"),
                          bpf_filter="vlan 10")
    with capture.open(op) as source:
        assert sum(len(b) for b in source.batches()) == 1
        assert source.capture_stats() == {"received": 0, "dropped": 0, "ifdropped": 0}


def test_observation_point_without_source_is_a_user_error():
    op = ObservationPoint(name="op9", observation_domain_id=1)
    with pytest.raises(UserError, match="observation point op9: neither offlineFile nor ifName"):
        capture.open(op)


def test_nanosecond_pcap_gives_microseconds(tmp_path):
    frame = bytes(ether() / IP() / UDP())
    path = tmp_path / "ns.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
                     + struct.pack("<IIII", 1_700_000_000, 123_456_789, len(frame), len(frame))
                     + frame)
    batch, _ = read_all(path)
    assert batch.ts_us.tolist() == [1_700_000_000_123_456]


def test_offline_snap_length_cuts_like_a_live_snaplen():
    full, _ = read_all(PCAPS / "demo.pcap")
    cut, stats = read_all(PCAPS / "demo.pcap", snap_length=64)
    reference, _ = read_all(PCAPS / "snaplen64.pcap")
    assert stats.packets_decoded == len(full) == len(cut)
    assert cut.ip_len.tolist() == full.ip_len.tolist()  # lengths come from the headers
    assert cut.src_port.tolist() == reference.src_port.tolist()


def test_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=f"^{tmp_path}: cannot read capture file"):
        open_offline(str(tmp_path))


def test_pcapng_with_mixed_link_types_ends_with_read_error(tmp_path):
    """libpcap cannot mix link types in one pcapng: the source ends and says why."""
    eth = bytes(ether() / IP() / UDP(sport=1))
    raw = bytes(IP() / UDP(sport=2))

    def epb(interface: int, frame: bytes) -> bytes:
        head = struct.pack("<IIIII", interface, 0, 0, len(frame), len(frame))
        return pcapng_block(6, head + pad4(frame))

    path = tmp_path / "mixed.pcapng"
    path.write_bytes(b"".join([
        pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
        pcapng_block(1, struct.pack("<HHI", 1, 0, 0)),
        pcapng_block(1, struct.pack("<HHI", 101, 0, 0)),
        epb(0, eth), epb(1, raw),
    ]))
    with open_offline(str(path)) as source:
        assert list(source.batches()) == []
        assert source.read_error and "different from the type of the first" in source.read_error
