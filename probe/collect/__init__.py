"""Collecting Process: the bundled collector decoding NetFlow v5/v9 and IPFIX."""
