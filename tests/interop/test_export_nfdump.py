"""nfcapd/nfdump, the reference collector, receives our IPFIX, NetFlow v9 and v5: no sequence
failures, totals equal to what the cache expired, and each flow's start and end on the first
and last packet's millisecond, whichever time fields the layout uses.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from probe.config.defaults import DEFAULT_KEYS, default_config
from probe.config.model import CacheLayout, Options, SampCountBased
from probe.export import open_exporting_process
from tests.export.expect import batch_rows, nfdump_row, with_8bit_flags
from tests.export.flows import SYS_INIT_US, batch, layout
from tests.export.harness import destination, run
from tests.export.peers import free_port, have, nfcapd, nfdump_flows, nfdump_info, udp_sink
from tests.export.test_options import sampled_config

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("nfcapd", "nfdump"), reason="needs nfcapd and nfdump")]

_COUNTS = ("octetDeltaCount", "packetDeltaCount", "tcpControlBits", "flowEndReason")


def _layout(times: tuple[str, str]) -> CacheLayout:
    return layout(DEFAULT_KEYS + times + _COUNTS, keys=len(DEFAULT_KEYS))


LAYOUTS = {
    "milliseconds": _layout(("flowStartMilliseconds", "flowEndMilliseconds")),
    "sysuptime": _layout(("flowStartSysUpTime", "flowEndSysUpTime")),
}


# Not here: IPFIX with flowStart/EndMicroseconds (nfdump 1.7.1 ignores IEs 154/155) and IPFIX
# with sysUpTime fields (nfdump 1.7.1 swaps first and last for IEs 21/22 in IPFIX and takes
# systemInitTimeMilliseconds only from a dedicated options record whose records it leaves out
# of its sequence check). tshark checks those encodings instead.
@pytest.mark.parametrize(("version", "times"), [
    (10, "milliseconds"), (9, "milliseconds"), (5, "milliseconds"), (9, "sysuptime"),
])
def test_nfdump_totals_sequence_and_times(tmp_path: Path, version: int, times: str) -> None:
    lay = LAYOUTS[times]
    batches = [batch(n, ipv, cache_layout=lay, domain=dom, seed=20 + i, offset_us=i * 777)
               for i, (n, ipv, dom) in enumerate(((400, 4, 1), (150, 6, 1), (90, 4, 3),
                                                  (61, 4, 1), (29, 6, 3)))]
    if version == 5:
        batches = [b for b in batches if b.ip_version == 4]
    port = free_port()
    with nfcapd(tmp_path / "nf", port) as nfdir:
        dest = destination(port=port, version=version)
        stats = run([dest], batches, step_us=400_000).stats()[dest.name]
    info = nfdump_info(nfdir)
    expected = with_8bit_flags(sorted(r for b in batches for r in batch_rows(b)))
    assert info["Sequence failures"] == 0
    assert info["Flows"] == len(expected) == stats["records"]
    assert info["Packets"] == sum(int(b.columns["_packets"].sum()) for b in batches)
    assert info["Bytes"] == sum(int(b.columns["_octets"].sum()) for b in batches)
    assert sorted(nfdump_row(f) for f in nfdump_flows(nfdir)) == expected


@pytest.mark.parametrize("version", [10, 9])
def test_collector_started_late_decodes_within_one_refresh(tmp_path: Path, version: int) -> None:
    """Templates go out every ``templateRefreshPacket`` messages over UDP, so a collector that
    missed the first ones decodes all data after the next refresh."""
    refresh = 4
    port = free_port()
    first = [batch(300, 4, seed=31)]  # sent before the collector listens: lost, templates too
    cfg = default_config(export=("udp", "127.0.0.1", port), version=version)
    ep = cfg.exporting_processes[0]
    dest = replace(ep.destinations[0], template_refresh_packet=refresh)
    ep = replace(ep, destinations=(dest,))
    rt = open_exporting_process(ep, cfg, SYS_INIT_US)
    now = SYS_INIT_US + 120_000_000
    with udp_sink(port):  # nobody decodes these: the collector is not running yet
        rt.export(first[0], now)
    later = [batch(28, 4, seed=40 + i, offset_us=i) for i in range(12)]  # one message each
    with nfcapd(tmp_path / "nf", port) as nfdir:
        for b in later:
            now += 1_100_000  # each batch flushed as its own message
            rt.export(b, now)
            rt.tick(now + 1_000_000)
        rt.close(now + 2_000_000)
        cfg_stats = rt.stats()[dest.name]
    got = {nfdump_row(f) for f in nfdump_flows(nfdir)}
    decoded = [all(r in got for r in with_8bit_flags(batch_rows(b))) for b in later]
    # Messages before the first refresh the collector sees are undecodable (no template);
    # everything from the first refresh on is decoded.
    first_ok = decoded.index(True)
    assert first_ok <= refresh
    assert all(decoded[first_ok:])
    assert cfg_stats["records"] == 300 + 28 * 12


# NetFlow v9 is not here: nfcapd 1.7.1 does not apply the System-scoped options record with
# IEs 34/35 that tshark decodes cleanly as "Sampling interval: 10, Deterministic sampling".
@pytest.mark.parametrize("version", [5])
def test_nfdump_scales_counts_by_the_announced_sampling(tmp_path: Path, version: int) -> None:
    """With 1-in-10 count sampling the exporter announces the interval (the v5 header's
    sampling mode and interval), and nfdump scales packets and bytes by it."""
    port = free_port()
    dest = destination(port=port, version=version)
    cfg = sampled_config(dest, (SampCountBased(name="cnt", packet_interval=1, packet_space=9),))
    b = batch(200, 4, seed=77)
    with nfcapd(tmp_path / "nf", port) as nfdir:
        run([dest], [b], config=cfg)
    info = nfdump_info(nfdir)
    assert info["Sequence failures"] == 0 and info["Flows"] == 200
    assert info["Packets"] == 10 * int(b.columns["_packets"].sum())
    assert info["Bytes"] == 10 * int(b.columns["_octets"].sum())


@pytest.mark.parametrize("version", [10, 9])
def test_periodic_options_and_refreshes_keep_sequences_clean(tmp_path: Path, version: int) -> None:
    """Options records and template refreshes in the middle of the data (every second of packet
    time here) must not disturb nfdump's sequence check: IPFIX options travel in domain 0."""
    port = free_port()
    dest = destination(port=port, version=version, template_refresh_timeout=1,
                       options_template_refresh_timeout=1)
    cfg = sampled_config(dest, (SampCountBased(name="cnt", packet_interval=1, packet_space=0),))
    batches = [batch(70, 4, seed=90 + i, offset_us=i) for i in range(8)]
    with nfcapd(tmp_path / "nf", port) as nfdir:
        st = run([dest], batches, config=cfg, step_us=1_500_000,
                 options=(Options(name="stats", options_type="exportingReliability",
                                  options_timeout_ms=1000),)).stats()[dest.name]
    info = nfdump_info(nfdir)
    assert info["Sequence failures"] == 0
    assert info["Flows"] == st["records"] == 560
    assert st["messages"] > 30  # the options and refreshes really went out in between
