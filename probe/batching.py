"""Sizes of what a capture reads, for the layers that may not import capture.

How many packets a capture source reads and the pipeline meters per call: the command line
shows the default without importing numpy and the pipeline (``flowprobe --help`` and every
sub-command's parser stay cheap to build). How many octets of each packet's IP payload a
batch keeps for hash-based selection: the config checks a filterHash's range against it. How
long a packet section of a PSAMP packet report may be: the config checks ``ieLength``.
"""

DEFAULT_BATCH_SIZE = 65536

# Octets of IP payload (after the IPv4 header and its options, after the IPv6 fixed header: the
# payload as RFC 791 and RFC 8200 count it) kept for hash-based selection.
PAYLOAD_HEAD = 64

# PSAMP packet sections (dataLinkFrameSection, ipHeaderPacketSection, ipPayloadPacketSection):
# the length when ``ieLength`` is not configured (an IPv6 and a TCP header fit), and the most a
# layout may ask for. A section is a column of that many octets per packet of a batch (64 MB
# for a 1024-octet section of a 64k-packet batch), decoded only when a cache reports it.
SECTION_DEFAULT_LENGTH = 64
SECTION_MAX_LENGTH = 1024
