"""Every encoding the meter can ask for, checked against tshark: MAC addresses, VLAN, TTL and
length extremes, flow label, ICMP type and code apart, reduced-size counters (RFC 7011 §6.2),
and each family of flow times (seconds, microseconds as NTP time stamps, sysUpTime), together
with the selector and reliability options records — with no expert warnings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from probe.cache.records import RecordBatch
from tests.export.flows import SYS_INIT_US, batch, layout
from tests.export.harness import destination, run
from tests.export.peers import dumpcap, have, tshark_expert, tshark_flows, udp_sink
from tests.export.test_options import ALL_KINDS, sampled_config

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("dumpcap", "tshark"), reason="needs dumpcap and tshark")]

KEYS = ("sourceIPv4Address", "destinationIPv4Address", "sourceIPv6Address",
        "destinationIPv6Address", "protocolIdentifier", "sourceTransportPort",
        "destinationTransportPort", "sourceMacAddress", "destinationMacAddress", "vlanId",
        "ipClassOfService", "flowLabelIPv6", "icmpTypeIPv4", "icmpCodeIPv4")
NONKEYS = ("octetDeltaCount", "packetDeltaCount", "minimumTTL", "maximumTTL",
           "minimumIpTotalLength", "maximumIpTotalLength", "tcpControlBits",
           "fragmentIdentification")
REDUCED = {"octetDeltaCount": 4, "packetDeltaCount": 3, "minimumIpTotalLength": 2,
           "maximumIpTotalLength": 2}
TIMES = {"seconds": ("flowStartSeconds", "flowEndSeconds"),
         "microseconds": ("flowStartMicroseconds", "flowEndMicroseconds"),
         "sysuptime": ("flowStartSysUpTime", "flowEndSysUpTime")}

# tshark field -> IE name, and how tshark prints it
_PLAIN = {"cflow.protocol": "protocolIdentifier", "cflow.srcport": "sourceTransportPort",
          "cflow.dstport": "destinationTransportPort", "cflow.vlanid": "vlanId",
          "cflow.icmp_ipv4_type": "icmpTypeIPv4", "cflow.icmp_ipv4_code": "icmpCodeIPv4",
          "cflow.ipv6flowlabel": "flowLabelIPv6", "cflow.octets": "octetDeltaCount",
          "cflow.packets": "packetDeltaCount", "cflow.ttl_min": "minimumTTL",
          "cflow.ttl_max": "maximumTTL", "cflow.length_min": "minimumIpTotalLength",
          "cflow.length_max": "maximumIpTotalLength", "cflow.frag_ident": "fragmentIdentification"}
_HEX = {"cflow.tos": "ipClassOfService", "cflow.tcpflags": "tcpControlBits"}
_MAC = {"cflow.srcmac": "sourceMacAddress", "cflow.dstmac": "destinationMacAddress"}


def _abs_us(s: str) -> int:
    main, _, rest = s.rpartition(".")
    secs = int(datetime.strptime(main, "%b %d, %Y %H:%M:%S").replace(tzinfo=UTC).timestamp())
    return secs * 1_000_000 + int(rest.split()[0][:6])


def _rel_ms(s: str) -> int:
    whole, _, frac = s.partition(".")
    return int(whole) * 1000 + int(frac[:3])


def _expected(b: RecordBatch, times: str) -> list[tuple]:
    c = b.columns
    rows = []
    for i in range(len(b)):
        row = []
        for name in (*_PLAIN.values(), *_HEX.values()):
            if name not in c:
                continue
            v = int(c[name][i])
            if name in REDUCED and name.endswith("Length"):
                v &= (1 << (8 * REDUCED[name])) - 1
            row.append(v)
        row += [int(c[n][i]) for n in _MAC.values()]
        start, end = int(c["_start_us"][i]), int(c["_end_us"][i])
        if times == "seconds":
            row += [start // 1_000_000 * 1_000_000, end // 1_000_000 * 1_000_000]
        elif times == "microseconds":
            row += [start, end]
        else:
            row += [start // 1000 - SYS_INIT_US // 1000, end // 1000 - SYS_INIT_US // 1000]
        rows.append(tuple(row))
    return sorted(rows)


def _tshark_row(f: dict[str, str], times: str, ip_version: int) -> tuple:
    row = []
    for k, name in _PLAIN.items():
        if (name == "flowLabelIPv6") != (ip_version == 6) and name in (
                "flowLabelIPv6", "icmpTypeIPv4", "icmpCodeIPv4"):
            continue
        row.append(int(f[k]))
    row += [int(f[k], 16) for k in _HEX]
    row += [int(f[k].replace(":", ""), 16) for k in _MAC]
    if times == "sysuptime":
        row += [_rel_ms(f["cflow.timestart"]), _rel_ms(f["cflow.timeend"])]
    else:
        row += [_abs_us(f["cflow.abstimestart"]), _abs_us(f["cflow.abstimeend"])]
    return tuple(row)


@pytest.mark.parametrize("times", list(TIMES))
def test_rich_layouts_decode_exactly_in_tshark(tmp_path: Path, times: str) -> None:
    lay = layout(KEYS + NONKEYS + TIMES[times], keys=len(KEYS), lengths=REDUCED)
    batches = [batch(60, 4, cache_layout=lay, seed=3), batch(45, 6, cache_layout=lay, seed=4)]
    cap = tmp_path / "rich.pcap"
    with udp_sink() as sink:
        port = sink.getsockname()[1]
        dest = destination(port=port, version=10)
        with dumpcap(cap, f"udp port {port}"):
            run([dest], batches, config=sampled_config(dest, ALL_KINDS))
    decode_as = f"udp.port=={port},cflow"
    expert = tshark_expert(cap, decode_as)
    assert "Warns" not in expert and "Errors" not in expert, expert
    flows = tshark_flows(cap, decode_as)
    for b in batches:
        v6 = b.ip_version == 6
        got = sorted(_tshark_row(f, times, b.ip_version) for f in flows
                     if ("cflow.srcaddrv6" in f) == v6 and "cflow.protocol" in f)
        assert got == _expected(b, times)
    selectors = {f["cflow.selector_id"]: f for f in flows if "cflow.selector_id" in f}
    assert selectors["3"]["cflow.sampling_packet_space"] == "9"
    assert selectors["6"]["cflow.sampling_probability"] == "0.5"
    final = [f for f in flows if "cflow.flowsexp" in f][-1]
    assert final["cflow.flowsexp"] == "105" and final["cflow.notsent_flows"] == "0"
