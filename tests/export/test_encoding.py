"""Field encodings: reduced size, MAC, NTP time stamps — each checked against the RFC's bytes."""

from __future__ import annotations

import numpy as np

from probe.export.encoding import FieldSpec, encode_columns, record_dtype, us_to_ntp
from probe.export.templates import TemplateRegistry
from tests.export.flows import batch, layout


def test_ntp_microseconds_round_trip_exactly() -> None:
    us = np.array([0, 1, 999_999, 1_700_000_000_123_456], dtype=np.uint64)
    ntp = us_to_ntp(us)
    secs = ntp >> np.uint64(32)
    frac = ntp & np.uint64(0xFFFFFFFF)
    assert list(secs) == [2_208_988_800, 2_208_988_800, 2_208_988_800, 3_908_988_800]
    back = (frac * np.uint64(1_000_000)) >> np.uint64(32)  # a collector truncates
    assert list(back) == [0, 1, 999_999, 123_456]


def test_ntp_microsecond_fractions_have_the_low_11_bits_zero_and_decode_either_way() -> None:
    """RFC 7011 §6.1.9: the low 11 bits of a dateTimeMicroseconds fraction SHOULD be zero. Every
    microsecond of a second still decodes exactly, truncated or rounded to nearest."""
    us = np.arange(1_000_000, dtype=np.uint64) + np.uint64(1_700_000_000_000_000)
    frac = us_to_ntp(us) & np.uint64(0xFFFFFFFF)
    assert not (frac & np.uint64(0x7FF)).any()
    exact = us % np.uint64(1_000_000)
    truncated = (frac * np.uint64(1_000_000)) >> np.uint64(32)
    rounded = (frac * np.uint64(1_000_000) + np.uint64(1 << 31)) >> np.uint64(32)
    assert (truncated == exact).all() and (rounded == exact).all()


def test_reduced_size_integers_saturate_counters_and_keep_identifiers_low_bits() -> None:
    specs = (FieldSpec(1, 3), FieldSpec(2, 4), FieldSpec(7, 1))  # octets, packets, src port
    assert record_dtype(specs).itemsize == 8
    raw = encode_columns(specs, [np.array([0x1234567, 5], dtype=np.uint64),
                                 np.array([7, 1 << 40], dtype=np.uint64),
                                 np.array([0x1FF, 3], dtype=np.uint16)], 2)
    assert raw == bytes.fromhex("ffffff" "00000007" "ff" "000005" "ffffffff" "03")


def test_mac_and_ipv6_and_milliseconds_bytes() -> None:
    specs = (FieldSpec(56, 6), FieldSpec(27, 16), FieldSpec(152, 8), FieldSpec(150, 4))
    v6 = np.arange(16, dtype=np.uint8).reshape(1, 16)
    raw = encode_columns(specs, [np.array([0x0A0B0C0D0E0F], dtype=np.uint64), v6,
                                 np.array([1_700_000_000_123], dtype=np.uint64),
                                 np.array([1_700_000_000], dtype=np.uint32)], 1)
    assert raw == bytes.fromhex("0a0b0c0d0e0f") + bytes(range(16)) + \
        (1_700_000_000_123).to_bytes(8, "big") + (1_700_000_000).to_bytes(4, "big")


def test_template_per_domain_and_layout_with_ie_length() -> None:
    lay = layout(("sourceIPv4Address", "destinationIPv4Address", "octetDeltaCount",
                  "packetDeltaCount"), keys=2, lengths={"octetDeltaCount": 4,
                                                        "packetDeltaCount": 2})
    reg = TemplateRegistry()
    t1 = reg.for_batch(batch(3, 4, cache_layout=lay, domain=1))
    t2 = reg.for_batch(batch(5, 4, cache_layout=lay, domain=1, seed=9))
    t3 = reg.for_batch(batch(5, 4, cache_layout=lay, domain=2))
    t4 = reg.for_batch(batch(5, 6, domain=1))
    assert t1 is t2 and t1.template_id == 256
    # Unique across domains too, so collectors that key templates on the id alone (libfixbuf)
    # read every domain right.
    assert t3.template_id == 257 and t3.domain == 2
    assert t4.template_id == 258
    assert [(s.ie_id, s.length) for s in t1.specs] == [(8, 4), (12, 4), (1, 4), (2, 2)]
    assert t1.record_len == 14


def test_slices_and_concatenations_keep_packet_and_octet_totals() -> None:
    """What the not-sent counters read of a dropped part of a chunk: any slice of a slice, and
    slices glued back together, total exactly the records they hold."""
    from probe.export.templates import Chunk, concat_chunks, cumulative

    packets = np.arange(1, 41, dtype=np.uint64)
    octets = packets * 100
    whole = Chunk(1, None, bytes(40 * 4), 4, cumulative(packets), cumulative(octets))
    assert (whole.packets, whole.octets) == (820, 82000)
    part = whole.slice(5, 30).slice(3, 20)  # records 8..24
    assert part.n == 17
    assert (part.packets, part.octets) == (int(packets[8:25].sum()), int(octets[8:25].sum()))
    glued = concat_chunks([whole.slice(0, 7), whole.slice(7, 31).slice(0, 24), whole.slice(31, 40)])
    assert (glued.n, glued.packets, glued.octets) == (40, 820, 82000)
    assert glued.slice(10, 12).packets == 11 + 12
