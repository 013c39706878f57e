"""Context enrichment (GoFlow2+): named networks add who a flow's ends are to each flow.

```yaml
networks:
  - name: web-servers
    cidr: 10.1.0.0/24            # or a list of CIDRs; IPv4 or IPv6
    context: {application: web, tier: frontend}
  - name: clients
    cidr: [192.0.2.0/24, 2001:db8:100::/48]
```

Each flow gains ``context``: ``source_group`` / ``destination_group`` (the name of the
network its source / destination address is in; the longest prefix wins) and
``source_labels`` / ``destination_labels`` (that network's ``context``), only what matched;
a flow neither end of which is in a network gets ``{}``, so every line has the field.

The match runs over a whole batch at once: the address columns are (n, 16) octet arrays, and
for each prefix length the table holds (longest first) the masked addresses are looked up in
that length's sorted networks with one ``searchsorted``; the result is a column of indexes
into one context object per pair of networks. A batch costs a few numpy passes per distinct
prefix length, not a Python step per flow and network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.collect.columns import tok
from probe.errors import UserError
from probe.format.batch import FlowBatch, address_octets


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    labels: dict[str, object]


class _Table:
    """One family's prefixes: for each length, the sorted masked networks and who they are."""

    def __init__(self, prefixes: list[tuple[bytes, int, int]]) -> None:
        # prefixes: (16 octets, prefix length in bits, network index)
        self.lengths: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for length in sorted({p[1] for p in prefixes}, reverse=True):
            rows = sorted((net, idx) for net, plen, idx in prefixes if plen == length)
            keys = np.array([net for net, _ in rows], dtype="S16")
            self.lengths.append((_mask(length), keys, np.array([i for _, i in rows],
                                                               dtype=np.int32)))

    def lookup(self, addrs: np.ndarray) -> np.ndarray:
        """Network index for each (n, 16) address, -1 where none matches."""
        out = np.full(len(addrs), -1, dtype=np.int32)
        todo = np.arange(len(addrs))
        for mask, keys, index in self.lengths:
            if not todo.size:
                break
            masked = np.ascontiguousarray(addrs[todo] & mask).view("S16")[:, 0]
            at = np.minimum(np.searchsorted(keys, masked), len(keys) - 1)
            hit = keys[at] == masked
            out[todo[hit]] = index[at[hit]]
            todo = todo[~hit]
        return out


def _mask(bits: int) -> np.ndarray:
    m = np.zeros(16, np.uint8)
    m[: bits // 8] = 0xFF
    if bits % 8:
        m[bits // 8] = (0xFF << (8 - bits % 8)) & 0xFF
    return m


class Context:
    """The networks of a context file, ready to match batches of flows."""

    def __init__(self, networks: list[Network], prefixes: list[tuple[str, int]]) -> None:
        """``prefixes``: (CIDR, network index)."""
        self.networks = networks
        v4: list[tuple[bytes, int, int]] = []
        v6: list[tuple[bytes, int, int]] = []
        for cidr, idx in prefixes:
            net = ipaddress.ip_network(cidr)
            packed = net.network_address.packed.ljust(16, b"\0")
            (v6 if net.version == 6 else v4).append((packed, net.prefixlen, idx))
        self.v4, self.v6 = _Table(v4), _Table(v6)

    def groups(self, b: FlowBatch, which: str) -> np.ndarray:
        """Network index of each row's ``which`` (``src``/``dst``) address, -1 for none."""
        addrs, v6, have = address_octets(b, f"{which}_addr")
        out = np.full(len(addrs), -1, dtype=np.int32)
        for table, rows in ((self.v4, np.flatnonzero(have & ~v6)),
                            (self.v6, np.flatnonzero(have & v6))):
            if rows.size and table.lengths:
                out[rows] = table.lookup(addrs[rows])
        return out

    def enrich(self, b: FlowBatch) -> None:
        """Give the batch a ``context`` column: per row the groups and labels of its ends
        (``{}`` when neither end is in a network). A column of indexes into one object per
        pair of networks the batch has: no Python per row."""
        if b.n == 0:
            return
        width = len(self.networks) + 1
        pair = (self.groups(b, "src") + 1).astype(np.int64) * width + self.groups(b, "dst") + 1
        pairs, index = np.unique(pair, return_inverse=True)
        made = [self._context(p // width - 1, p % width - 1) for p in pairs.tolist()]
        b.columns["context"] = tok(made, index.reshape(-1).astype(np.int32))

    def _context(self, s: int, d: int) -> dict[str, object]:
        ctx: dict[str, object] = {}
        for side, idx in (("source", s), ("destination", d)):
            if idx >= 0:
                net = self.networks[idx]
                ctx[f"{side}_group"] = net.name
                if net.labels:
                    ctx[f"{side}_labels"] = net.labels
        return ctx


def load(path: str | Path) -> Context:
    """Read a context file; a problem is one line naming the file and the entry (exit 2)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise UserError(f"{path}: {where}not valid YAML: "
                        f"{getattr(exc, 'problem', None) or exc}") from None
    try:
        return parse(doc)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None


def parse(doc: object) -> Context:
    if not isinstance(doc, dict) or set(doc) - {"networks"}:
        raise ValueError("expected a mapping with one key, networks")
    items = doc.get("networks") or []
    if not isinstance(items, list):
        raise ValueError("networks: expected a list")
    networks: list[Network] = []
    prefixes: list[tuple[str, int]] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"networks[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "cidr", "context"}:
            raise ValueError(f"{where}: expected name, cidr and context")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name: {name!r} is not a name")
        labels = item.get("context") or {}
        if not isinstance(labels, dict):
            raise ValueError(f"{where}.context: expected a mapping of labels")
        cidrs = item.get("cidr")
        for cidr in cidrs if isinstance(cidrs, list) else [cidrs]:
            try:
                net = ipaddress.ip_network(str(cidr))
            except ValueError as exc:
                raise ValueError(f"{where}.cidr: {exc}") from None
            if str(net) in seen:
                raise ValueError(f"{where}.cidr: {net} is already network {seen[str(net)]!r}")
            seen[str(net)] = name
            prefixes.append((str(net), len(networks)))
        networks.append(Network(name, {str(k): v for k, v in labels.items()}))
    return Context(networks, prefixes)
