"""One wire model for both directions: the collector reads our export into the very Template,
FieldSpec and DomainState values the exporter wrote it from."""

from __future__ import annotations

import pytest

from probe.collect import Decoder
from probe.config.model import Config, ExportingProcess
from probe.export import ExportingProcessRuntime, open_exporting_process
from probe.wire import DomainState, FieldSpec, Template
from probe.wire.messages import V5_RECORD, V5_RECORD_LEN
from probe.wire.templates import template_record
from tests.collect.test_own_exporter import RICH
from tests.export.flows import SYS_INIT_US, batch
from tests.export.harness import UdpSink, destination

BATCHES = (batch(60, 4, cache_layout=RICH, seed=3, domain=7),
           batch(45, 6, cache_layout=RICH, seed=4, domain=7))


def _export(version: int) -> tuple[ExportingProcessRuntime, list[bytes]]:
    sink = UdpSink()
    try:
        ep = ExportingProcess(name="ep", destinations=(destination(sink, version=version),))
        rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
        now = SYS_INIT_US + 100_000_000
        for b in BATCHES:
            rt.export(b, now)
        rt.close(now)
        return rt, sink.datagrams()
    finally:
        sink.close()


@pytest.mark.parametrize("version", [10, 9])
def test_the_collector_holds_the_exporters_templates_and_domain_state(version: int) -> None:
    rt, datagrams = _export(version)
    dec = Decoder()
    for d in datagrams:
        dec.decode(d, "127.0.0.1", session="exporter")
    assert dec.stats.records == 105 and not dec.stats.malformed
    (session,) = dec.table.sessions.values()
    sent = {(t.domain, t.template_id): t for t in map(rt.registry.for_batch, BATCHES)}
    got = dict(session.templates)
    assert len(sent) == 2 and sent.keys() <= got.keys()
    for key, t in sent.items():
        theirs = got[key]
        assert type(theirs) is Template and type(theirs.specs[0]) is FieldSpec
        assert theirs.record_len == t.record_len and not theirs.is_options
        if version == 10:  # v9 writes icmpTypeCodeIPv6 as its ICMP_TYPE (32)
            assert theirs == t, key
            assert theirs.names == t.names  # the cache layout's IE names
    (dest,) = rt.destinations
    for domain, ours in dest._states.items():  # the state itself is the point here
        theirs = session.domains[domain]
        assert type(theirs) is DomainState
        assert theirs.sequence == ours.sequence  # what the collector expects next is what
        # the exporter would send next: nothing lost, nothing counted twice


def test_template_record_is_read_back_as_the_same_template() -> None:
    t = Template(300, 5, tuple(FieldSpec(i, n) for i, n in ((8, 4), (12, 4), (1, 8), (2, 4))),
                 names=("sourceIPv4Address", "destinationIPv4Address", "octetDeltaCount",
                        "packetDeltaCount"))
    body = template_record(t, 10)
    msg_len = 16 + 4 + len(body)
    msg = (10).to_bytes(2, "big") + msg_len.to_bytes(2, "big") + bytes(8) + \
        (5).to_bytes(4, "big") + (2).to_bytes(2, "big") + (4 + len(body)).to_bytes(2, "big") + body
    dec = Decoder()
    dec.decode(msg, "192.0.2.1")
    (session,) = dec.table.sessions.values()
    assert session.templates[(5, 300)] == t
    assert session.templates[(5, 300)].names == t.names


def test_the_v5_record_layout_is_48_octets_of_the_classic_fields() -> None:
    assert V5_RECORD.size == V5_RECORD_LEN == 48
    values = V5_RECORD.unpack(bytes(range(48)))
    assert len(values) == 18  # 20 fields, two of them padding
