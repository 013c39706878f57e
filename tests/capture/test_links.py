"""Every supported link type decodes to the same IP packets; everything else is a UserError."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from probe.capture import COLUMNS, open_offline
from probe.errors import UserError
from tests.capture.helpers import PCAPS, check_invariant, read_all, write_frames
from tools.make_pcaps import write_pcap

LINK_HEADER = {"linux-sll.pcap": 16, "linux-sll2.pcap": 20, "raw-ip.pcap": 0,
               "null-loopback.pcap": 4, "openbsd-loop.pcap": 4}
LINK_FILES = {
    "linux-sll.pcap": 113,
    "linux-sll2.pcap": 276,
    "raw-ip.pcap": 12,  # LINKTYPE_RAW 101 in the file, DLT_RAW as libpcap reports it
    "null-loopback.pcap": 0,
    "openbsd-loop.pcap": 108,
}


@pytest.mark.parametrize("name", sorted(LINK_FILES))
def test_link_type_decodes_like_ethernet(name):
    """The same 60 IP packets behind each link header give identical columns (MACs aside;
    the frame's length and the layers' offsets move by the link header's length)."""
    reference, _ = read_all(PCAPS / "demo.pcap")
    reference = reference.take(np.arange(60))
    with open_offline(str(PCAPS / name)) as source:
        assert source.datalink == LINK_FILES[name]
    batch, stats = read_all(PCAPS / name)
    assert stats.packets_read == stats.packets_decoded == 60
    for column in COLUMNS:
        got = getattr(batch, column)
        if column in ("src_mac", "dst_mac"):
            assert not got.any(), column
        elif column in ("frame_len", "frame_section_len"):  # the link header differs
            np.testing.assert_array_equal(got - batch.ip_len,
                                          reference.frame_len - reference.ip_len
                                          - 14 + LINK_HEADER[name], err_msg=column)
        elif column in ("l3_offset", "l4_offset"):
            want = getattr(reference, column).astype(np.int64) - 14 + LINK_HEADER[name]
            np.testing.assert_array_equal(got, want, err_msg=column)
        else:
            np.testing.assert_array_equal(got, getattr(reference, column), err_msg=column)


def test_pcapng_reads_like_pcap():
    a, _ = read_all(PCAPS / "demo.pcap")
    b, _ = read_all(PCAPS / "demo.pcapng")
    assert len(a) == 260
    for column in COLUMNS:
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column), err_msg=column)


@pytest.mark.parametrize(
    ("linktype", "versions"),
    [(12, [4, 6]), (14, [4, 6]), (101, [4, 6]), (228, [4]), (229, [6])],
)
def test_raw_ip_link_types(tmp_path, linktype, versions):
    frames = [IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2),
              IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=3, dport=4)]
    batch, stats = read_all(write_frames(tmp_path / "raw.pcap", frames, linktype=linktype))
    check_invariant(stats)
    assert batch.ip_version.tolist() == versions
    # The other family on a single-family link names the wrong IP version.
    assert stats.ignored.get("bad-version", 0) == 2 - len(versions)


def test_null_loopback_either_byte_order_and_unknown_family(tmp_path):
    ip4 = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2))
    ip6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=3, dport=4))
    frames = [
        struct.pack("<I", 2) + ip4,
        struct.pack(">I", 2) + ip4,
        struct.pack("<I", 28) + ip6,  # FreeBSD
        struct.pack(">I", 24) + ip6,  # OpenBSD/NetBSD written big-endian
        struct.pack("<I", 10) + ip6,  # Linux
        struct.pack("<I", 7) + ip4,  # AF_LOCAL: not IP
        b"\x02\0",  # cut inside the family word
    ]
    batch, stats = read_all(write_frames(tmp_path / "null.pcap", frames, linktype=0))
    assert batch.ip_version.tolist() == [4, 4, 6, 6, 6]
    assert stats.ignored == {"non-ip": 1, "too-short": 1}


def test_unsupported_link_type_is_a_user_error(tmp_path):
    path = tmp_path / "hdlc.pcap"
    write_pcap(path, [(0.0, b"\x0f\x00\x08\x00" + bytes(IP()))], 104)  # Cisco HDLC
    with pytest.raises(UserError, match=r"hdlc\.pcap: unsupported link type 104"):
        open_offline(str(path))


def test_not_a_capture_is_a_user_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a pcap\n")
    with pytest.raises(UserError, match=r"notes\.txt: cannot read capture file") as info:
        open_offline(str(path))
    assert len(info.value.problems) == 1 and "\n" not in info.value.problems[0]


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"nope\.pcap: cannot read capture file"):
        open_offline(str(tmp_path / "nope.pcap"))


def test_bad_bpf_filter_is_a_user_error():
    with pytest.raises(UserError, match="bad BPF filter 'tcp port banana'"):
        open_offline(str(PCAPS / "demo.pcap"), bpf_filter="tcp port banana")


def test_bpf_filter_selects_packets():
    batch, stats = read_all(PCAPS / "demo.pcap", bpf_filter="udp port 53")
    assert len(batch) == stats.packets_read == 22
    assert set(batch.proto.tolist()) == {17}
    assert ((batch.src_port == 53) | (batch.dst_port == 53)).all()


def test_ppp_framings(tmp_path):
    """PPP with and without ff 03, with a compressed protocol field, and MPLS over PPP."""
    ip4 = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2))
    ip6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=3, dport=4))
    frames = [
        b"\xff\x03\x00\x21" + ip4,  # RFC 1662 HDLC-like framing
        b"\x00\x57" + ip6,  # no address/control
        b"\x21" + ip4,  # protocol-field compression
        b"\xff\x03\x02\x81" + b"\x00\x01\x01\x40" + ip4,  # MPLS
        b"\xff\x03\xc0\x21" + b"\x01\x01\x00\x04",  # LCP
        b"\xff\x03\x00",  # cut inside the protocol field
    ]
    batch, stats = read_all(write_frames(tmp_path / "ppp.pcap", frames, linktype=9))
    assert batch.ip_version.tolist() == [4, 6, 4, 4]
    assert batch.src_port.tolist() == [1, 3, 1, 1]
    assert batch.mpls_labels[:, 0].tolist() == [0, 0, 0, 0x00010140]
    assert stats.ignored == {"non-ip": 1, "too-short": 1}
