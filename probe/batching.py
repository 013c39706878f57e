"""Sizes of what a capture reads, for the layers that may not import capture.

How many packets a capture source reads and the pipeline meters per call: the command line
shows the default without importing numpy and the pipeline (``flowprobe --help`` and every
sub-command's parser stay cheap to build). How many octets of each packet's IP payload a
batch keeps for hash-based selection: the config checks a filterHash's range against it.
"""

DEFAULT_BATCH_SIZE = 65536

# Octets of IP payload (after the IPv4 header and its options, after the IPv6 fixed header: the
# payload as RFC 791 and RFC 8200 count it) kept for hash-based selection.
PAYLOAD_HEAD = 64
