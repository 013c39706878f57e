"""An Observation Point decodes only the columns its caches and selectors read; the records
must be exactly those of decoding every column, for any layout."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from probe import capture
from probe.capture import COLUMNS, DecodeStats, decode_batch
from probe.config import model
from probe.config.defaults import default_config
from probe.ie import by_name
from probe.pipeline import Pipeline, columns_for_point
from tests.cache.synth import record_set
from tests.capture.helpers import PCAPS
from tests.helpers import RecordingSink
from tools import tracegen


def _fields(keys: tuple[str, ...], nonkeys: tuple[str, ...]) -> model.CacheLayout:
    return model.CacheLayout(fields=tuple(
        model.CacheField(name=f"f{i}", ie_id=by_name(n).id, ie_name=n,  # type: ignore[union-attr]
                         is_flow_key=i < len(keys))
        for i, n in enumerate(keys + nonkeys)))


COUNTS = ("octetDeltaCount", "packetDeltaCount", "flowEndReason")
LAYOUTS = {
    "default": None,
    "link": _fields(("sourceMacAddress", "destinationMacAddress", "vlanId", "ipVersion"),
                    (*COUNTS, "ipClassOfService", "minimumTTL", "maximumTTL")),
    "ipv6": _fields(("sourceIPv6Address", "flowLabelIPv6", "nextHeaderIPv6"),
                    (*COUNTS, "fragmentIdentification", "maximumIpTotalLength")),
    "icmp": _fields(("icmpTypeIPv4", "icmpCodeIPv6", "protocolIdentifier"),
                    (*COUNTS, "sourceIPv4Address", "ipDiffServCodePoint", "tcpControlBits")),
}


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "mix.pcap"
    tracegen.generate(path, 20_000, seed=3, duration_s=120)  # tags, fragments, v6, ICMP
    return path


def _records(config: model.Config, prune: bool) -> list[tuple]:
    def open_source(op: model.ObservationPoint) -> capture.Source:
        return capture.open(op, columns=columns_for_point(op) if prune else None)

    pipe = Pipeline(config, exporters=False, batch_size=4096, open_source=open_source)
    sink = RecordingSink()
    pipe.attach(sink)
    pipe.run(handle_signals=False)
    return record_set(sink.records)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_records_do_not_depend_on_which_columns_were_decoded(trace: Path, layout: str) -> None:
    config = default_config(str(trace))
    if LAYOUTS[layout] is not None:
        cache = replace(config.caches[0], layout=LAYOUTS[layout])
        sp = replace(config.selection_processes[0], cache=cache)
        op = replace(config.observation_points[0], selection_processes=(sp,))
        config = replace(config, observation_points=(op,), selection_processes=(sp,),
                         caches=(cache,))
    wanted = columns_for_point(config.observation_points[0])
    assert len(wanted) < len(COLUMNS)  # something is left out, else this tests nothing
    assert _records(config, prune=True) == _records(config, prune=False)


@pytest.mark.parametrize("name", sorted(p.name for p in PCAPS.glob("*.pcap*")))
def test_decoded_columns_equal_a_full_decode_and_the_rest_are_zero(name: str) -> None:
    import pcapy

    reader = pcapy.open_offline(str(PCAPS / name))
    data, packed = reader.next_batch(100_000)
    meta = np.frombuffer(packed, np.uint32).reshape(-1, 4)
    full_stats, part_stats = DecodeStats(), DecodeStats()
    full = decode_batch(data, meta, reader.datalink(), full_stats)
    want = {"ts_us", "ip_version", "src_addr", "proto", "ip_len"}
    part = decode_batch(data, meta, reader.datalink(), part_stats, want)
    assert (part_stats.packets_decoded, dict(part_stats.ignored)) == (
        full_stats.packets_decoded, dict(full_stats.ignored))
    for column in COLUMNS:
        got = getattr(part, column)
        if column in want:
            np.testing.assert_array_equal(got, getattr(full, column), err_msg=column)
        else:
            assert got.shape == getattr(full, column).shape and not got.any(), column


def test_records_are_the_same_read_by_the_forked_reader_without_copying(trace: Path) -> None:
    """The pipeline meters batches in place in the reader's shared memory; nothing it keeps may
    still point there when the slot is reused (records identical to an in-process read)."""
    config = default_config(str(trace))

    def records(open_source) -> list[tuple]:  # type: ignore[no-untyped-def]
        pipe = Pipeline(config, exporters=False, batch_size=2048, open_source=open_source)
        sink = RecordingSink()
        pipe.attach(sink)
        pipe.run(handle_signals=False)
        return record_set(sink.records)

    in_process = records(capture.open)
    forked_in_place = records(
        lambda op: capture.forked.Reader(capture.open(op), 2048, copy=False))
    assert forked_in_place == in_process
