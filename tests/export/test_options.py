"""Options records a collector needs to scale sampled counts and judge export reliability."""

from __future__ import annotations

import struct

import pytest

from probe.config.defaults import default_layout
from probe.config.model import (
    Cache,
    Config,
    ExportingProcess,
    SampCountBased,
    SampRandOutOfN,
    SampTimeBased,
    SampUniProb,
    SelectAll,
    SelectionProcess,
)
from tests.export.flows import SYS_INIT_US, batch
from tests.export.harness import UdpSink, destination, run


def sampled_config(dest, selectors) -> Config:
    ep = ExportingProcess(name="ep", destinations=(dest,))
    cache = Cache(name="c", kind="timeoutCache", layout=default_layout(dest.ipfix_version),
                  exporting_processes=(ep,))
    other = SelectionProcess(name="unrelated", selectors=(SampCountBased(
        name="not ours", packet_interval=1, packet_space=1),))  # feeds no cache of ours
    sp = SelectionProcess(name="s", selectors=selectors, cache=cache)
    return Config(selection_processes=(other, sp), caches=(cache,), exporting_processes=(ep,))


ALL_KINDS = (SelectAll(name="all"), SampCountBased(name="cnt", packet_interval=1, packet_space=9),
             SampTimeBased(name="time", time_interval=1000, time_space=4000),
             SampRandOutOfN(name="rand", size=1, population=4),
             SampUniProb(name="prob", probability=0.5))


@pytest.fixture
def sink():
    s = UdpSink()
    yield s
    s.close()


def test_ipfix_selector_and_reliability_options(sink: UdpSink) -> None:
    dest = destination(sink)
    run([dest], [batch(100, 4)], config=sampled_config(dest, ALL_KINDS))
    msgs = sink.messages()
    opts = [r for m in msgs for _, r in m.options]
    selectors = {r[302]: r for r in opts if 302 in r}
    # selector ids count every selector of the config in order; selectAll is not announced
    assert set(selectors) == {3, 4, 5, 6}
    assert (selectors[3][304], selectors[3][305], selectors[3][306]) == (1, 1, 9)
    assert (selectors[4][304], selectors[4][307], selectors[4][308]) == (2, 1000, 4000)
    assert (selectors[5][304], selectors[5][309], selectors[5][310]) == (3, 1, 4)
    assert selectors[6][304] == 4
    assert struct.unpack(">d", selectors[6][311].to_bytes(8, "big"))[0] == 0.5
    reliability = [r for r in opts if 144 in r]
    assert reliability[0][42] == 0 and reliability[0][160] == SYS_INIT_US // 1000
    final = reliability[-1]  # sent at close: what the session exported
    assert final[42] == 100 and final[166] == 0
    assert final[41] == len(msgs) - 1  # every message before the final statistics


def test_netflow_v9_sampling_options(sink: UdpSink) -> None:
    dest = destination(sink, version=9)
    run([dest], [batch(10, 4)], config=sampled_config(dest, ALL_KINDS))
    opts = [r for m in sink.messages() for _, r in m.options]
    assert opts and all((r[34], r[35]) == (10 * 4 * 2, 2) for r in opts)


def test_netflow_v5_header_sampling(sink: UdpSink) -> None:
    dest = destination(sink, version=5)
    sel = (SampCountBased(name="cnt", packet_interval=1, packet_space=99),)
    run([dest], [batch(10, 4)], config=sampled_config(dest, sel))
    assert {m.header["sampling"] for m in sink.messages()} == {(1 << 14) | 100}
