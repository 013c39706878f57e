"""Context enrichment (GoFlow2+): named networks add ``context`` to flows, longest prefix
first, IPv4 and IPv6, over whole batches; checked against a brute-force match."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import numpy as np
import pytest

from probe.collect import FlowBatch
from probe.collect.columns import IPV4, IPV6, Column, const
from probe.format import context as ctx
from tests.format.errors import one_line

GOFLOW2PLUS = """\
networks:
  - name: web-servers
    cidr: 10.1.0.0/24
    context:
      application: web
      tier: frontend
  - name: database-servers
    cidr: 10.1.1.0/24
    context:
      application: database
      tier: backend
  - name: corporate
    cidr: [10.0.0.0/8, 2001:db8::/32]
  - name: lab
    cidr: 2001:db8:1::/48
    context: {site: lab}
"""


@pytest.fixture
def context(tmp_path: Path) -> ctx.Context:
    path = tmp_path / "context.yaml"
    path.write_text(GOFLOW2PLUS)
    return ctx.load(path)


def _batch(*pairs: tuple[str, str]) -> FlowBatch:
    """A batch of flows between these addresses (one family per batch, as the decoders
    make them)."""
    v6 = ":" in pairs[0][0]

    def column(texts: list[str]) -> Column:
        packed = [ipaddress.ip_address(t).packed for t in texts]
        if v6:
            return Column(IPV6, np.frombuffer(b"".join(packed), np.uint8).reshape(-1, 16))
        return Column(IPV4, np.frombuffer(b"".join(packed), ">u4").astype(np.uint32))

    n = len(pairs)
    return FlowBatch(n, "IPFIX", {"type": const("IPFIX", n),
                                  "src_addr": column([s for s, _ in pairs]),
                                  "dst_addr": column([d for _, d in pairs])}, {})


def _contexts(b: FlowBatch) -> list[object]:
    return [r.flow["context"] for r in b.records()]


def test_groups_and_labels_longest_prefix_first(context: ctx.Context) -> None:
    v4 = _batch(("10.1.0.5", "10.1.1.9"), ("10.200.0.1", "192.0.2.1"),
                ("192.0.2.1", "198.51.100.1"))
    v6 = _batch(("2001:db8:1::1", "2001:db8:2::1"), ("2001:db9::1", "2001:db8:1:ff::2"))
    for b in (v4, v6):
        context.enrich(b)
    web = {"application": "web", "tier": "frontend"}
    assert _contexts(v4) == [
        {"source_group": "web-servers", "source_labels": web,
         "destination_group": "database-servers",
         "destination_labels": {"application": "database", "tier": "backend"}},
        {"source_group": "corporate"},
        {},
    ]
    assert _contexts(v6) == [
        {"source_group": "lab", "source_labels": {"site": "lab"},
         "destination_group": "corporate"},
        {"destination_group": "lab", "destination_labels": {"site": "lab"}},
    ]
    assert len(v4.columns["context"].values or ()) == 3  # one object per pair of networks
    line = json.loads(v4.json_lines().splitlines()[1])
    assert line == {"type": "IPFIX", "src_addr": "10.200.0.1", "dst_addr": "192.0.2.1",
                    "context": {"source_group": "corporate"}}


def _brute(nets: list[ipaddress._BaseNetwork], addr: ipaddress._BaseAddress) -> int:
    best, best_len = -1, -1
    for i, n in enumerate(nets):
        if addr.version == n.version and addr in n and n.prefixlen > best_len:
            best, best_len = i, n.prefixlen
    return best


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_match_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nets: list[ipaddress._BaseNetwork] = []
    for _ in range(60):  # nested prefixes of all lengths, both families, around a few bases
        if rng.random() < 0.5:
            base = ipaddress.IPv4Address(int(rng.integers(0, 4)) << 30 | 0x0A000000)
            net = ipaddress.ip_network(f"{base}/{int(rng.integers(1, 33))}", strict=False)
        else:
            base = ipaddress.IPv6Address((0x20010DB8 << 96) | int(rng.integers(0, 4)) << 90)
            net = ipaddress.ip_network(f"{base}/{int(rng.integers(1, 129))}", strict=False)
        if net not in nets:
            nets.append(net)
    c = ctx.parse({"networks": [{"name": f"n{i}", "cidr": str(n)} for i, n in enumerate(nets)]})
    addrs: list[ipaddress._BaseAddress] = []
    for _ in range(3000):
        n = nets[int(rng.integers(len(nets)))]
        offset = int(rng.integers(0, 2**63)) % n.num_addresses
        addrs.append(n.network_address + offset if rng.random() < 0.8 else
                     ipaddress.ip_address(int(rng.integers(0, 2**32))))
    got, want = [], []
    for version in (4, 6):
        mine = [str(a) for a in addrs if a.version == version]
        got.append(c.groups(_batch(*((a, a) for a in mine)), "src"))
        want.append(np.array([_brute(nets, ipaddress.ip_address(a)) for a in mine]))
    assert (np.concatenate(got) == np.concatenate(want)).all()
    assert (np.concatenate(want) >= 0).sum() > 2000  # the test is not about misses only


@pytest.mark.parametrize(("doc", "message"), [
    ("networks:\n  - {name: a, cidr: 10.0.0.1/8}\n", "networks[0].cidr: 10.0.0.1/8 has host "
     "bits set"),
    ("networks:\n  - {name: a, cidr: 10.0.0.0/8}\n  - {name: b, cidr: 10.0.0.0/8}\n",
     "networks[1].cidr: 10.0.0.0/8 is already network 'a'"),
    ("networks:\n  - {cidr: 10.0.0.0/8}\n", "networks[0].name: None is not a name"),
    ("nets: []\n", "expected a mapping with one key, networks"),
    ("networks:\n  - {name: a, cidr: 10.0.0.0/8, labels: {}}\n",
     "networks[0]: expected name, cidr and context"),
])
def test_a_bad_context_file_is_one_line(tmp_path: Path, doc: str, message: str) -> None:
    assert one_line(ctx.load, tmp_path / "c.yaml", doc) == f"{tmp_path / 'c.yaml'}: {message}"
