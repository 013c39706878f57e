"""Property: any well-formed packet decodes to exactly the header values it was built with.

Hypothesis draws header fields (addresses, TOS, TTL, ports, TCP flags, flow label, VLAN,
fragment state, payload size), scapy builds the frames, and the whole list is decoded as one
batch, so rows of different families and link shapes sit side by side as they do on a link.
"""

from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q
from scapy.packet import Raw

from probe.capture import DecodeStats, decode_batch
from tests.capture.helpers import ether

V4 = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))
V6 = st.integers(0, 2**128 - 1).map(lambda v: str(ipaddress.IPv6Address(v)))


@st.composite
def packets(draw: st.DrawFn) -> tuple[bytes, dict[str, int | bytes]]:
    v6 = draw(st.booleans())
    src, dst = draw(V6 if v6 else V4), draw(V6 if v6 else V4)
    tos, ttl = draw(st.integers(0, 255)), draw(st.integers(1, 255))
    proto = draw(st.sampled_from([6, 17, 1]))
    sport, dport = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
    flags = draw(st.integers(0, 255))
    payload = b"p" * draw(st.integers(0, 300))
    vlan = draw(st.one_of(st.just(0), st.integers(1, 4094)))
    flow_label = draw(st.integers(0, 2**20 - 1)) if v6 else 0
    hop_by_hop = v6 and draw(st.booleans())
    first_fragment = draw(st.booleans())
    ident = draw(st.integers(0, 65535))

    if proto == 6:
        upper = TCP(sport=sport, dport=dport, flags=flags)
    elif proto == 17:
        upper = UDP(sport=sport, dport=dport)
    else:
        upper = ICMPv6EchoRequest() if v6 else ICMP(type=sport % 256, code=dport % 256)
    if v6:
        net = IPv6(src=src, dst=dst, tc=tos, hlim=ttl, fl=flow_label)
        if hop_by_hop:
            net = net / IPv6ExtHdrHopByHop()
        if first_fragment:
            net = net / IPv6ExtHdrFragment(id=ident, m=1)
    else:
        net = IP(src=src, dst=dst, tos=tos, ttl=ttl, id=ident, flags="MF" if first_fragment else 0)
    link = ether() / Dot1Q(vlan=vlan) if vlan else ether()
    frame = bytes(link / net / upper / Raw(payload))

    proto_out = 58 if (v6 and proto == 1) else proto
    ported = proto in (6, 17)
    ip_len = len(bytes(net / upper / Raw(payload)))
    expected: dict[str, int | bytes] = {
        "ip_version": 6 if v6 else 4,
        "src_addr": ipaddress.ip_address(src).packed.ljust(16, b"\0"),
        "dst_addr": ipaddress.ip_address(dst).packed.ljust(16, b"\0"),
        "proto": proto_out,
        "src_port": sport if ported else 0,
        "dst_port": dport if ported else 0,
        "icmp_type": (128 if v6 else sport % 256) if proto == 1 else 0,
        "icmp_code": (0 if v6 else dport % 256) if proto == 1 else 0,
        "tos": tos,
        "ttl": ttl,
        "ip_len": ip_len,
        "tcp_flags": flags if proto == 6 else 0,
        "flow_label": flow_label,
        "frag_id": ident if (first_fragment or not v6) else 0,
        "fragment": 1 if first_fragment else 0,
        "next_header": (0 if hop_by_hop else 44 if first_fragment else proto_out) if v6 else 0,
        "vlan_id": vlan,
    }
    return frame, expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(packets(), min_size=1, max_size=12))
def test_decoded_columns_equal_built_headers(built):
    frames = [frame for frame, _ in built]
    sizes = np.array([len(f) for f in frames], dtype=np.uint32)
    meta = np.zeros((len(frames), 4), dtype=np.uint32)
    meta[:, 2] = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    meta[:, 3] = sizes
    stats = DecodeStats()
    batch = decode_batch(b"".join(frames), meta, 1, stats)
    assert stats.packets_decoded == len(frames)
    for i, (_, expected) in enumerate(built):
        for name, value in expected.items():
            got = getattr(batch, name)[i]
            got = bytes(got) if isinstance(value, bytes) else int(got)
            assert got == value, (i, name)
