"""Why a packet was skipped: one small integer per row while decoding, a name in DecodeStats.

Codes keep the per-row bookkeeping a numpy uint8 column; names are what users and tests see.
"""

from __future__ import annotations

OK = 0
TOO_SHORT = 1  # captured bytes end before the headers we need
BAD_HEADER_LENGTH = 2  # a length field that cannot be right (IHL < 5, total < header, ...)
NON_IP = 3  # the link header says the payload is not IPv4/IPv6
UNSUPPORTED_LINK = 4  # IP inside an encapsulation we do not open (MPLS, PPPoE, deep tags)
BAD_VERSION = 5  # the IP version nibble does not match what the link header promised

NAMES: dict[int, str] = {
    TOO_SHORT: "too-short",
    BAD_HEADER_LENGTH: "bad-header-length",
    NON_IP: "non-ip",
    UNSUPPORTED_LINK: "unsupported-link",
    BAD_VERSION: "bad-version",
}
