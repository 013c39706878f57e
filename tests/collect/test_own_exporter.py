"""Our Exporting Process -> our Collector over loopback: every field equals the cache's record.

IPFIX, NetFlow v9 and v5, each over UDP and TCP, through ``probe.export.open_exporting_process``
(the real encoder and transports) and ``probe.collect.Collector`` (the real sockets). The raw
values the collector hands over are compared with ``RecordBatch.rows()`` field by field; this is
what ``replay --verify`` relies on.
"""

from __future__ import annotations

import pytest

from probe.collect import Collector
from probe.config.defaults import default_layout
from probe.config.model import CacheLayout, Config, Destination, ExportingProcess
from probe.export import open_exporting_process
from tests.export.flows import SYS_INIT_US, batch, layout

RICH = layout(
    ("sourceIPv4Address", "destinationIPv4Address", "sourceIPv6Address",
     "destinationIPv6Address", "protocolIdentifier", "sourceTransportPort",
     "destinationTransportPort", "ipVersion", "ipClassOfService", "flowLabelIPv6", "vlanId",
     "sourceMacAddress", "postDestinationMacAddress", "fragmentIdentification",
     "octetDeltaCount", "packetDeltaCount", "tcpControlBits", "minimumTTL", "maximumTTL",
     "flowStartMicroseconds", "flowEndMicroseconds", "flowStartSysUpTime", "flowEndSysUpTime",
     "flowStartSeconds", "flowEndSeconds", "flowEndReason", "minimumIpTotalLength",
     "maximumIpTotalLength"),
    keys=14, lengths={"octetDeltaCount": 4, "packetDeltaCount": 4})
V5_FIELDS = ("sourceIPv4Address", "destinationIPv4Address", "protocolIdentifier",
             "sourceTransportPort", "destinationTransportPort", "octetDeltaCount",
             "packetDeltaCount", "tcpControlBits")


def _key(raw: dict) -> tuple:
    return tuple(raw.get(n) for n in ("sourceIPv4Address", "sourceIPv6Address",
                                      "destinationIPv4Address", "destinationIPv6Address",
                                      "sourceTransportPort", "destinationTransportPort",
                                      "flowStartMilliseconds", "flowStartMicroseconds"))


def _roundtrip(version: int, transport: str, lay: CacheLayout) -> tuple[list, list[dict]]:
    batches = [batch(60, 4, cache_layout=lay, seed=3)]
    if version != 5:
        batches.append(batch(45, 6, cache_layout=lay, seed=4))
    with Collector([f"{transport}://127.0.0.1:0"]) as c:
        dest = Destination(name="d", transport=transport,  # type: ignore[arg-type]
                           ipfix_version=version,  # type: ignore[arg-type]
                           destination_address="127.0.0.1", destination_port=c.port)
        ep = ExportingProcess(name="ep", destinations=(dest,))
        rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
        now = SYS_INIT_US + 100_000_000
        for b in batches:
            rt.export(b, now)
        rt.close(now)
        c.wait_idle(0.3)
        c.stop()
        got = list(c.records())
        assert not c.stats.malformed, c.stats.malformed
        assert c.stats.lost_records == 0 and c.stats.lost_packets == 0
    return batches, got


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("version", [10, 9])
@pytest.mark.parametrize("lay", [default_layout(10), RICH], ids=["default", "rich"])
def test_templated_export_decodes_to_the_cache_records(version: int, transport: str,
                                                       lay: CacheLayout) -> None:
    batches, got = _roundtrip(version, transport, lay)
    rows = [r for b in batches for r in b.rows()]
    assert len(got) == len(rows)
    by_key = {_key(g["raw"]): g for g in got}
    for row in rows:
        g = by_key[_key(row)]
        assert {n: g["raw"].get(n) for n in row} == row
        assert g["packets"] == row["packetDeltaCount"] and g["bytes"] == row["octetDeltaCount"]
    assert {g["etype"] for g in got} == {0x800, 0x86DD}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_v5_export_decodes_to_the_cache_records(transport: str) -> None:
    batches, got = _roundtrip(5, transport, default_layout(5))
    rows = batches[0].rows()
    assert len(got) == len(rows)
    by_key = {tuple(g["raw"][n] for n in V5_FIELDS): g for g in got}
    for row in rows:
        g = by_key[tuple(row[n] for n in V5_FIELDS)]
        assert g["time_flow_start_ns"] // 1_000_000 == row["flowStartMilliseconds"]
        assert g["time_flow_end_ns"] // 1_000_000 == row["flowEndMilliseconds"]
        assert g["type"] == "NETFLOW_V5" and g["etype"] == 0x800
        if row["protocolIdentifier"] == 1:  # ICMP type/code ride in v5's destination port
            assert g["raw"]["icmpTypeCodeIPv4"] == row["icmpTypeCodeIPv4"]
            assert (g["icmp_type"], g["icmp_code"]) == divmod(row["icmpTypeCodeIPv4"], 256)
