"""Flow keys: two packets get the same key exactly when their key IE values agree, and the
values read back from a key are the packet's."""

from __future__ import annotations

import numpy as np
import pytest

from probe.branchless import keep
from probe.cache.fields import EXTRACT, KeyLayout, key_rows, take_keys
from probe.capture.batch import PacketBatch
from probe.config.defaults import DEFAULT_KEYS


def _mixed(n: int, seed: int) -> PacketBatch:
    """Packets whose fields take few values each, so many share some but not all of them."""
    rng = np.random.default_rng(seed)
    b = PacketBatch.empty(n)
    b.ip_version[:] = rng.choice(np.array([4, 6], np.uint8), n)
    for col in (b.src_addr, b.dst_addr):
        col[:, rng.integers(0, 16)] = rng.integers(0, 3, n)
        col[:, 3] = rng.integers(0, 2, n)
        col[b.ip_version == 4, 4:] = 0  # as the decoder leaves an IPv4 address
    b.proto[:] = rng.choice(np.array([1, 6, 17, 58], np.uint8), n)
    b.src_port[:] = rng.integers(0, 3, n) << 14
    b.dst_port[:] = rng.integers(0, 3, n)
    b.icmp_type[:] = rng.integers(0, 2, n)
    b.icmp_code[:] = rng.integers(0, 2, n) << 7
    b.tos[:] = rng.integers(0, 2, n) << 7
    b.vlan_id[:] = rng.integers(0, 3, n) << 10
    b.src_mac[:] = rng.integers(0, 2, n) << 47 | rng.integers(0, 2, n)
    b.dst_mac[:] = rng.integers(0, 2, n) << 40
    b.flow_label[:] = rng.integers(0, 2, n) << 19
    # MPLS and tunnels (issue 17): label entries, a tunnel kind and id, outer addresses
    b.mpls_labels[:, 0] = rng.integers(0, 3, n) << 12 | rng.integers(0, 2, n) << 9 | 0x140
    b.mpls_labels[:, 1] = rng.integers(0, 2, n) << 31 | 0x1FF
    b.tunnel_kind[:] = rng.choice(np.array([0, 1, 2, 7], np.uint8), n)
    b.tunnel_id[:] = keep(b.tunnel_kind > 0, rng.integers(0, 2, n) << 31 | 0x10)
    b.outer_version[:] = keep(b.tunnel_kind > 0, rng.choice(np.array([4, 6], np.uint8), n))
    b.outer_src[:, 0] = keep(b.tunnel_kind > 0, rng.integers(1, 3, n))
    b.outer_dst[:, 15] = keep(b.outer_version == 6, rng.integers(0, 2, n))
    return b


LAYOUTS = [
    DEFAULT_KEYS,
    ("sourceIPv6Address", "destinationTransportPort"),
    ("sourceMacAddress", "vlanId", "destinationMacAddress", "ipClassOfService"),
    ("ipVersion", "protocolIdentifier", "sourceMacAddress", "flowLabelIPv6", "icmpTypeIPv4"),
    ("sourceIPv4Address",),
    # a 3-octet octetArray (padded to 4 in the key), tunnel ids and outer addresses
    ("mplsTopLabelStackSection", "sourceIPv4Address", "mplsLabelStackSection2",
     "mplsTopLabelExp", "UPSTREAM_TUNNEL_ID", "layer2SegmentId", "greKey",
     "UNTUNNELED_IPV4_SRC_ADDR", "UNTUNNELED_IPV6_DST_ADDR", "UNTUNNELED_PROTOCOL"),
]


@pytest.mark.parametrize("names", LAYOUTS)
def test_equal_keys_exactly_when_key_values_agree(names: tuple[str, ...]) -> None:
    b = _mixed(4000, seed=len(names))
    words = KeyLayout(names).words(b)
    assert words.dtype == np.uint64 and words.shape[1] == len(b)
    keys = key_rows(take_keys(words, np.arange(len(b))))
    values = [b.ip_version] + [np.ascontiguousarray(EXTRACT[n](b)).reshape(len(b), -1)
                               for n in names]
    truth = [tuple(v[i].tobytes() for v in values) for i in range(len(b))]
    by_key: dict[bytes, set[tuple[bytes, ...]]] = {}
    for k, t in zip(keys, truth, strict=True):
        by_key.setdefault(k, set()).add(t)
    assert all(len(ts) == 1 for ts in by_key.values())  # one key: one set of values
    assert len(by_key) == len(set(truth)) > 2  # different values: different keys


@pytest.mark.parametrize("names", LAYOUTS)
def test_key_values_read_back_from_keys(names: tuple[str, ...]) -> None:
    """A flow keeps only its key; its record's key fields are read back from it and must be
    what the packets carried (IPv4 addresses as numbers, IPv6 as octets, ICMP per family)."""
    b = _mixed(4000, seed=7 + len(names))
    layout = KeyLayout(names)
    got = layout.values(take_keys(layout.words(b), np.arange(len(b))))
    assert list(got) == list(names)
    for name in names:
        want = EXTRACT[name](b)
        assert got[name].dtype == want.dtype, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_mpls_and_tunnel_values_from_packets() -> None:
    b = PacketBatch.empty(4)
    b.mpls_labels[:, 0] = [0, 100 << 12 | 5 << 9 | 1 << 8 | 64, 0xFFFFF << 12 | 0xFF, 0]
    b.tunnel_kind[:] = [0, 1, 2, 7]  # none, GRE, VXLAN, NVGRE
    b.tunnel_id[:] = [0, 0xDEADBEEF, 0xABCDE, 0x12345601]
    b.outer_version[:] = [0, 4, 6, 4]
    b.outer_src[1, :4] = [192, 0, 2, 1]
    b.outer_src[2] = list(range(16))
    sections = EXTRACT["mplsTopLabelStackSection"](b)
    assert sections.shape == (4, 3) and sections.tolist()[1] == [0x00, 0x06, 0x4B]
    assert sections.tolist()[2] == [0xFF, 0xFF, 0xF0]
    assert EXTRACT["mplsTopLabelTTL"](b).tolist() == [0, 64, 0xFF, 0]
    assert EXTRACT["mplsTopLabelExp"](b).tolist() == [0, 5, 0, 0]
    assert EXTRACT["greKey"](b).tolist() == [0, 0xDEADBEEF, 0, 0x12345601]
    assert EXTRACT["layer2SegmentId"](b).tolist() == [0, 0, 1 << 56 | 0xABCDE, 2 << 56 | 0x123456]
    assert EXTRACT["UPSTREAM_TUNNEL_ID"](b).tolist() == [0, 0xDEADBEEF, 0xABCDE, 0x12345601]
    assert EXTRACT["UNTUNNELED_PROTOCOL"](b).tolist() == [0, 47, 17, 47]
    assert EXTRACT["UNTUNNELED_L4_DST_PORT"](b).tolist() == [0, 0, 4789, 0]
    assert EXTRACT["UNTUNNELED_IPV4_SRC_ADDR"](b).tolist() == [0, 0xC0000201, 0, 0]
    assert EXTRACT["UNTUNNELED_IPV6_SRC_ADDR"](b)[:, 15].tolist() == [0, 0, 15, 0]
