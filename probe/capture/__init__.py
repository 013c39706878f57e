"""Observation Point: capture sources (pcap/pcapng files, live interfaces) and packet decoding."""
