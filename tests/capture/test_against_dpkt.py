"""An independent per-packet decode (dpkt) must agree with the vectorised one, column by column."""

from __future__ import annotations

import dpkt
import numpy as np
import pytest

from probe.capture import COLUMNS
from probe.capture.batch import PAYLOAD_HEAD
from tests.capture.helpers import PCAPS, read_all

# Section widths for the comparison: longer than some packets, shorter than others.
WIDTHS = {"frame_section": 90, "ip_section": 70, "payload_section": 33}


def _dpkt_rows(path) -> list[dict[str, object]]:
    rows = []
    with open(path, "rb") as fh:
        for ts, frame in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(frame)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                continue
            v6 = isinstance(ip, dpkt.ip6.IP6)
            row: dict[str, object] = {
                "ts_us": round(ts * 1_000_000),
                "ip_version": 6 if v6 else 4,
                "src_addr": ip.src.ljust(16, b"\0"),
                "dst_addr": ip.dst.ljust(16, b"\0"),
                "tos": ip.fc if v6 else ip.tos,
                "ttl": ip.hlim if v6 else ip.ttl,
                "ip_len": 40 + ip.plen if v6 else ip.len,
                "flow_label": ip.flow if v6 else 0,
                "next_header": ip.nxt if v6 else 0,
                "vlan_id": eth.vlan_tags[0].id if getattr(eth, "vlan_tags", None) else 0,
                "src_mac": int.from_bytes(eth.src, "big"),
                "dst_mac": int.from_bytes(eth.dst, "big"),
                "src_port": 0, "dst_port": 0, "icmp_type": 0, "icmp_code": 0, "tcp_flags": 0,
                "frag_id": 0 if v6 else ip.id,
                "fragment": 0,
                "mpls_labels": [0] * 10,
                # no tunnel is opened by default
                "tunnel_kind": 0, "tunnel_id": 0, "outer_version": 0,
                "outer_src": bytes(16), "outer_dst": bytes(16),
            }
            # Hash-selection input: header octets 4..7 and the head of the IP payload, taken
            # from the frame itself (the IP header follows Ethernet and its 802.1Q tags).
            at = 14 + 4 * len(getattr(eth, "vlan_tags", None) or ())
            payload = at + (40 if v6 else ip.hl * 4)
            stop = min(len(frame), at + (40 + ip.plen if v6 else ip.len))
            head = frame[payload:stop][:PAYLOAD_HEAD]
            row["ip_word1"] = int.from_bytes(frame[at + 4:at + 8], "big")
            row["payload_head"] = head.ljust(PAYLOAD_HEAD, b"\0")
            row["payload_head_len"] = len(head)
            # PSAMP packet sections: the frame, the IP packet (not the Ethernet padding after
            # it) and its payload, each cut to the decoded width, zeros past what there is
            ip_end = at + (40 + ip.plen if v6 else ip.len)
            row["frame_len"] = max(len(frame), ip_end)
            for name, start, end in (("frame", 0, len(frame)), ("ip", at, stop),
                                     ("payload", payload, stop)):
                row[f"{name}_section"] = frame[start:end][:WIDTHS[f"{name}_section"]].ljust(
                    WIDTHS[f"{name}_section"], b"\0")
                row[f"{name}_section_len"] = max(0, end - start)
            row["l3_offset"], row["l4_offset"] = at, payload
            proto = ip.p if not v6 else ip.nxt
            non_first = not v6 and ip.offset > 0
            if not v6 and (ip.mf or ip.offset):
                row["fragment"] = 2 if ip.offset else 1
            row["proto"] = proto
            upper = ip.data
            if not non_first and isinstance(upper, dpkt.tcp.TCP | dpkt.udp.UDP):
                row["src_port"], row["dst_port"] = upper.sport, upper.dport
                if isinstance(upper, dpkt.tcp.TCP):
                    row["tcp_flags"] = upper.flags & 0x1FF  # NS..FIN
            elif not non_first and isinstance(upper, dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
                row["icmp_type"], row["icmp_code"] = upper.type, upper.code
            rows.append(row)
    return rows


@pytest.mark.parametrize("name", ["demo.pcap", "vlan.pcap", "ipv4-frag.pcap"])
def test_vectorised_decode_matches_dpkt(name):
    expected = _dpkt_rows(PCAPS / name)
    batch, _ = read_all(PCAPS / name, widths=WIDTHS)
    assert len(batch) == len(expected) > 0
    for column in COLUMNS:
        got = getattr(batch, column)
        if column.endswith(("_addr", "_src", "_dst", "_section")) or column == "payload_head":
            joined = b"".join(row[column] for row in expected)  # type: ignore[misc]
            want = np.frombuffer(joined, dtype=np.uint8).reshape(len(expected), -1)
        else:
            want = np.array([row[column] for row in expected])
        np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=column)
