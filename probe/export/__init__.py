"""Exporting Process: IPFIX, NetFlow v9 and v5 encoders over UDP and TCP."""
