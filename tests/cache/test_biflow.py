"""Biflow caches (RFC 5103): one flow for both directions, the initiator's packets forward."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import numpy as np
import pytest

from probe.cache import build_cache
from probe.capture.batch import PacketBatch
from probe.config.model import Cache, CacheField, CacheLayout
from probe.ie import REVERSE_PEN, by_name
from tests.cache.synth import split
from tests.cache.test_timeout_cache import meter

T0 = 1_700_000_000_000_000
KEYS = ("sourceIPv4Address", "destinationIPv4Address", "sourceIPv6Address",
        "destinationIPv6Address", "protocolIdentifier", "sourceTransportPort",
        "destinationTransportPort", "ipVersion")
NONKEYS = ("flowStartMicroseconds", "flowEndMicroseconds", "packetDeltaCount",
           "octetDeltaCount", "tcpControlBits", "flowEndReason", "biflowDirection",
           "reverseFlowStartMicroseconds", "reverseFlowEndMicroseconds",
           "reversePacketDeltaCount", "reverseOctetDeltaCount", "reverseTcpControlBits")


def biflow_layout() -> CacheLayout:
    fields = []
    for name in KEYS + NONKEYS:
        ie = by_name(name)
        assert ie is not None, name
        fields.append(CacheField(name=name, ie_id=ie.id, ie_name=name, is_flow_key=name in KEYS,
                                 enterprise_number=ie.pen))
    return CacheLayout(fields=tuple(fields))


def biflow_cfg(kind: str = "timeoutCache", *, max_flows: int | None = None, idle: int = 0,
               active: int = 0) -> Cache:
    return Cache(name="c", kind=kind, max_flows=max_flows, idle_timeout=idle,  # type: ignore[arg-type]
                 active_timeout=active, layout=biflow_layout())


def conversations(n: int, *, pairs: int, seed: int, fin_share: float = 0.0,
                  span_us: int = 8_000_000) -> PacketBatch:
    """``n`` packets of ``pairs`` host/port pairs, each packet either way, some TCP FIN/RST,
    some IPv6."""
    rng = np.random.default_rng(seed)
    b = PacketBatch.empty(n)
    b.ts_us[:] = T0 + np.sort(rng.integers(0, span_us, n))
    pair = rng.integers(0, pairs, n)
    back = rng.random(n) < 0.45
    v6 = pair % 4 == 0
    b.ip_version[:] = np.where(v6, 6, 4)
    a = np.zeros((n, 16), np.uint8)
    z = np.zeros((n, 16), np.uint8)
    a[:, 0], a[:, 3] = 10, pair % 7  # the same host talks to several servers
    z[:, 0], z[:, 2], z[:, 3] = 172, 16, pair
    a[v6, 15], z[v6, 15] = 1, 2
    b.src_addr[:] = np.where(back[:, None], z, a)
    b.dst_addr[:] = np.where(back[:, None], a, z)
    tcp = pair % 3 != 0
    b.proto[:] = np.where(tcp, 6, 17)
    cport, sport = 1024 + pair, np.where(tcp, 443, 53)
    b.src_port[:] = np.where(back, sport, cport)
    b.dst_port[:] = np.where(back, cport, sport)
    b.ip_len[:] = rng.integers(40, 1500, n)
    b.tcp_flags[:] = np.where(tcp, 0x10, 0)
    fin = tcp & (rng.random(n) < fin_share)
    b.tcp_flags[fin] |= rng.choice(np.array([0x01, 0x01, 0x04], np.uint16), int(fin.sum()))
    return b


def reference(b: PacketBatch, cfg: Cache) -> list[tuple]:
    """RFC 5103 biflows, one packet at a time, naively: the first packet's source is the
    initiator; idle counts from the last packet either way; a natural cache ends a biflow on
    a RST either way or once both ends sent FIN; a full cache ends the least recently used."""
    idle, active = cfg.idle_timeout * 10**6, cfg.active_timeout * 10**6
    table: OrderedDict[tuple, dict] = OrderedDict()
    out = []
    clock = None

    def reason(f: dict) -> int:
        if not idle:
            return 2
        if not active:
            return 1
        return 1 if f["last"] + idle <= f["start"] + active else 2

    def deadline(f: dict) -> float:
        d = float("inf")
        if idle:
            d = min(d, f["last"] + idle)
        if active:
            d = min(d, f["start"] + active)
        return d

    def row(f: dict, why: int) -> tuple:
        return (f["init"][4], f["init"][5], f["start"], f["end"], f["pk"], f["oc"], f["fl"],
                f["rstart"], f["rend"], f["rpk"], f["roc"], f["rfl"], why)

    for i in range(len(b)):
        ts = int(b.ts_us[i])
        clock = ts if clock is None else max(clock, ts)
        for k in [k for k, f in table.items() if deadline(f) < clock]:
            f = table.pop(k)
            out.append(row(f, reason(f)))
        fwd = (int(b.ip_version[i]), bytes(b.src_addr[i]), bytes(b.dst_addr[i]),
               int(b.proto[i]), int(b.src_port[i]), int(b.dst_port[i]))
        rev = (fwd[0], fwd[2], fwd[1], fwd[3], fwd[5], fwd[4])
        key = min(fwd, rev)
        if key not in table:
            if cfg.max_flows and len(table) >= cfg.max_flows:
                _, f = table.popitem(last=False)
                out.append(row(f, 5))
            table[key] = {"init": fwd, "start": clock, "end": 0, "pk": 0, "oc": 0, "fl": 0,
                          "rstart": 0, "rend": 0, "rpk": 0, "roc": 0, "rfl": 0, "last": clock}
        f = table[key]
        table.move_to_end(key)
        flags = int(b.tcp_flags[i])
        if fwd == f["init"]:
            f["end"], f["pk"], f["oc"] = clock, f["pk"] + 1, f["oc"] + int(b.ip_len[i])
            f["fl"] |= flags
        else:
            if f["rpk"] == 0:
                f["rstart"] = clock
            f["rend"], f["rpk"], f["roc"] = clock, f["rpk"] + 1, f["roc"] + int(b.ip_len[i])
            f["rfl"] |= flags
        f["last"] = clock
        if cfg.kind == "naturalCache" and fwd[3] == 6 and (
                flags & 0x04 or (flags & 0x01 and f["fl"] & f["rfl"] & 0x01)):
            out.append(row(table.pop(key), 3))
    out += [row(f, 4) for f in table.values()]
    return sorted(out)


def summary(rbs: list) -> list[tuple]:
    names = ("sourceTransportPort", "destinationTransportPort", "flowStartMicroseconds",
             "flowEndMicroseconds", "packetDeltaCount", "octetDeltaCount", "tcpControlBits",
             "reverseFlowStartMicroseconds", "reverseFlowEndMicroseconds",
             "reversePacketDeltaCount", "reverseOctetDeltaCount", "reverseTcpControlBits",
             "flowEndReason")
    rows = []
    for rb in rbs:
        assert (rb.columns["biflowDirection"] == 1).all()
        rows += [tuple(int(rb.columns[n][i]) for n in names) for i in range(len(rb))]
    return sorted(rows)


CASES = [("timeoutCache", None, 1, 3), ("timeoutCache", 4, 1, 0), ("timeoutCache", 3, 0, 2),
         ("naturalCache", None, 2, 0), ("naturalCache", 5, 1, 3)]


@pytest.mark.parametrize(("kind", "max_flows", "idle", "active"), CASES)
def test_biflows_match_the_packet_at_a_time_reference_for_any_batch_size(
        kind: str, max_flows: int | None, idle: int, active: int) -> None:
    cfg = biflow_cfg(kind, max_flows=max_flows, idle=idle, active=active)
    b = conversations(700, pairs=30, seed=max_flows or 1, fin_share=0.04)
    want = reference(b, cfg)
    for size in (1, 7, 65536):
        assert summary(meter(build_cache(cfg, 1), split(b, size))) == want, size


def test_one_way_records_of_biflows_add_up_to_the_unidirectional_flows() -> None:
    """Split for NetFlow v5/v9, a biflow is its initiator's record and, if answered, the
    answer's record with source and destination swapped: the same per-5-tuple totals as a
    unidirectional cache of the same packets."""
    b = conversations(900, pairs=40, seed=3)
    bi = meter(build_cache(biflow_cfg(idle=300, active=1800), 1), [b])
    fields = tuple(f for f in biflow_layout().fields if f.enterprise_number != REVERSE_PEN
                   and f.ie_name != "biflowDirection")
    uni = meter(build_cache(replace(biflow_cfg(idle=300, active=1800),
                                    layout=CacheLayout(fields=fields)), 1), [b])

    def totals(rbs: list) -> dict[tuple, tuple[int, int]]:
        out: dict[tuple, tuple[int, int]] = {}
        for rb in rbs:
            c = rb.columns
            src = "sourceIPv4Address" if rb.ip_version == 4 else "sourceIPv6Address"
            dst = src.replace("source", "destination")
            for i in range(len(rb)):
                key = (bytes(np.atleast_1d(c[src][i]).view(np.uint8)),
                       bytes(np.atleast_1d(c[dst][i]).view(np.uint8)),
                       int(c["sourceTransportPort"][i]), int(c["destinationTransportPort"][i]))
                p, o = out.get(key, (0, 0))
                out[key] = (p + int(c["packetDeltaCount"][i]), o + int(c["octetDeltaCount"][i]))
        return out

    one_way = [part for rb in bi for part in rb.split()]  # type: ignore[misc]
    assert totals(one_way) == totals(uni)
    assert sum(len(rb) for rb in bi) < sum(len(rb) for rb in uni) <= sum(map(len, one_way))
    assert all(rb.split is None for rb in uni)


def test_a_slice_of_biflow_records_splits_into_the_slice_of_their_one_way_records() -> None:
    """An exporter may send a batch in slices (pacing, load balancing): each slice's one-way
    records are exactly its own biflows'."""
    (rb,) = meter(build_cache(biflow_cfg(idle=300, active=1800), 1),
                  [conversations(400, pairs=20, seed=5, fin_share=0.0)])[:1]
    whole = rb.split()  # type: ignore[misc]
    cut = len(rb) // 3
    parts = rb.slice(0, cut).split() + rb.slice(cut, len(rb)).split()  # type: ignore[union-attr]
    key = ("sourceTransportPort", "destinationTransportPort", "_start_us", "_packets")

    def rows(rbs: list) -> list[tuple]:
        return sorted(t for r in rbs for t in zip(*(r.columns[k].tolist() for k in key),
                                                   strict=True))

    assert rows(parts) == rows(whole)
    assert sum(map(len, whole)) > len(rb)
