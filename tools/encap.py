"""Encapsulated traffic for ``tools.tracegen``: MPLS, PPPoE, VLAN in MPLS, and tunnels.

    python -m tools.tracegen OUT.pcap --packets 100000 --encap mpls=0.1,pppoe=0.1,vxlan=0.1

A share of the trace's conversations travels encapsulated, each conversation in one way:

- ``mpls``: one to three MPLS labels between the Ethernet (and 802.1Q) header and IP;
- ``pppoe``: a PPPoE session with PPP inside (RFC 2516);
- ``vlan-mpls``: Ethernet over MPLS (RFC 4448) with the control word: two labels, then the
  customer's Ethernet frame, tagged with a VLAN of its own;
- ``gre`` (RFC 2784/2890, half of the tunnels with a key), ``vxlan`` (UDP 4789, inner Ethernet),
  ``geneve`` (UDP 6081, inner Ethernet, half with an option), ``gtpu`` (GTP-U G-PDUs on UDP 2152,
  a TEID per direction), ``ipip`` (IPv4 in IPv4 or IPv6, protocol 4) and ``6in4`` (IPv6 in
  IPv4, protocol 41): the conversation's IP packets inside an outer IPv4 or IPv6 header between
  one of eight tunnel endpoint pairs per kind. ``ipip`` takes only IPv4 conversations and
  ``6in4`` only IPv6 ones: conversations of the other family drawn for them stay plain.

The inner packets are exactly the plain trace's (the encapsulation draws from a random stream
of its own), so the trace's per-5-tuple totals are the inner totals. ``outer_totals`` are what
a meter that opens nothing sees: tunnels as their outer 5-tuple and outer IP length, the rest as
the inner packet in a longer frame. The plain trace's own GRE class (a GRE header in front of
a stub that is not a packet) is left out of encapsulated traces, so that a meter opening GRE
finds real packets in every GRE tunnel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tools.tracegen import MIN_FRAME, PCAP_RECORD, TOTALS_DTYPE, _be, _put

if TYPE_CHECKING:
    from tools.tracegen import _Trace

KINDS = ("mpls", "pppoe", "vlan-mpls", "gre", "vxlan", "geneve", "gtpu", "ipip", "6in4")
TUNNELS = ("gre", "vxlan", "geneve", "gtpu", "ipip", "6in4")
# flowprobe's switch (flowprobe:tunnels leaf) for each tunnel kind
SWITCH = {"gre": "gre", "vxlan": "vxlan", "geneve": "geneve", "gtpu": "gtpU", "ipip": "ipInIp",
          "6in4": "ipv6InIp"}
_MPLS, _PPPOE, _VLAN_MPLS, _GRE, _VXLAN, _GENEVE, _GTPU, _IPIP, _6IN4 = range(1, 10)
_OUTER_PROTO = {_GRE: 47, _VXLAN: 17, _GENEVE: 17, _GTPU: 17, _IPIP: 4, _6IN4: 41}
_UDP_PORT = {_VXLAN: 4789, _GENEVE: 6081, _GTPU: 2152}
PLAIN_SNAP = 98  # what tracegen writes of each plain frame: every header it has
# The longest header stack: Geneve with its option over IPv6 (14 + 40 + 8 + 16) in front of a
# tagged inner frame up to the end of its TCP header with options (18 + 40 + 24). A smaller
# snaplen would cut headers a meter needs to find the inner flow.
MIN_SNAPLEN = 14 + 40 + 8 + 16 + 18 + 40 + 24
_PREFIX = 144  # room for the longest prefix (outer headers + an inner link header)
_UNDERLAY_MACS = bytes.fromhex("02bb00000002" "02bb00000001")
PAIRS = 8  # tunnel endpoint pairs per tunnel kind
# The pseudowire (bottom) labels of vlan-mpls, one per pair: few, so that a decoder without a
# control-word heuristic can be told which labels carry Ethernet with the control word.
PW_LABELS = np.arange(1000, 1000 + PAIRS)


def parse_encap(text: str) -> dict[str, float]:
    """``kind=share,...``: shares of the conversations, fractions in [0, 1] summing to <= 1."""
    from tools.tracegen import parse_shares

    out = parse_shares(text, list(KINDS), "--encap", "kind")
    if sum(out.values()) > 1.0 + 1e-9:
        raise ValueError(f"--encap: the shares add up to {sum(out.values()):g}, more than 1")
    return out


@dataclass
class Plan:
    """How each conversation travels; arrays per conversation (``tid``/``sport``: per
    direction, 0 = client to server)."""

    kind: np.ndarray  # 0 plain, else 1 + KINDS index
    depth: np.ndarray  # MPLS labels (mpls: 1..3, vlan-mpls: 2)
    labels: np.ndarray  # (c, 3) label values, top first
    session: np.ndarray  # PPPoE session id
    pw_vid: np.ndarray  # the VLAN inside a vlan-mpls pseudowire
    outer_v6: np.ndarray  # the tunnel's outer IP version is 6
    a: np.ndarray  # (c, 16) the client side's tunnel endpoint
    b: np.ndarray  # (c, 16) the server side's
    tid: np.ndarray  # (c, 2) GRE key, VNI or TEID
    keyed: np.ndarray  # GRE: the key is present
    option: np.ndarray  # Geneve: one 8-octet option
    sport: np.ndarray  # (c, 2) the outer UDP source port


def plan(t: _Trace, shares: dict[str, float], seed: int) -> Plan:
    rng = np.random.default_rng([seed, 17])
    c = int(t.c)
    edges = np.cumsum([shares.get(k, 0.0) for k in KINDS])
    kind = np.searchsorted(edges, rng.random(c), side="right") + 1
    kind[kind > len(KINDS)] = 0
    kind[(kind == _IPIP) & t.v6] = 0
    kind[(kind == _6IN4) & ~t.v6] = 0
    pair = rng.integers(0, PAIRS, c)
    outer_v6 = ((pair % 3) == 2) & (kind != _6IN4)  # a third of the pairs speak IPv6
    a = np.zeros((c, 16), np.uint8)
    b = np.zeros((c, 16), np.uint8)
    base = kind.astype(np.int64) * 16 + pair  # RFC 2544's 198.18/15, 2001:db8:ffff::/48
    for side, end in ((a, 1), (b, 2)):
        v4 = (198 << 24) | (18 << 16) | (base << 8) | end
        side[~outer_v6, :4] = _be(v4[~outer_v6], 4)
        side[outer_v6, :6] = np.frombuffer(bytes.fromhex("20010db8ffff"), np.uint8)
        side[outer_v6, 12:16] = _be(v4[outer_v6], 4)
    depth = np.where(kind == _VLAN_MPLS, 2, 1 + rng.integers(0, 3, c))
    tid = np.stack([base * 4099 + 7, base * 4099 + 7], axis=1)
    tid[kind == _GTPU, 1] += 1  # a GTP-U tunnel's two directions have TEIDs of their own
    tid = np.where((kind == _VXLAN)[:, None] | (kind == _GENEVE)[:, None], tid & 0xFFFFFF, tid)
    labels = 16 + rng.integers(0, (1 << 20) - 16, (c, 3))
    labels[kind == _VLAN_MPLS, 1] = PW_LABELS[pair[kind == _VLAN_MPLS]]
    return Plan(kind=kind.astype(np.uint8), depth=depth, labels=labels,
                session=1 + rng.integers(0, 0xFFFE, c), pw_vid=rng.integers(1, 4095, c),
                outer_v6=outer_v6, a=a, b=b, tid=(tid & 0xFFFFFFFF).astype(np.uint64),
                keyed=(pair % 2) == 1, option=(pair % 2) == 0,
                sport=rng.integers(49152, 65536, (c, 2)))


def _plain_matrix(flat: np.ndarray, caplen: np.ndarray) -> np.ndarray:
    """The frames of tracegen's records (header + caplen octets each) as (m, PLAIN_SNAP)."""
    start = np.concatenate([[0], np.cumsum(PCAP_RECORD + caplen)[:-1]]) + PCAP_RECORD
    j = np.arange(PLAIN_SNAP)
    valid = j[None, :] < caplen[:, None]
    out = np.zeros((caplen.shape[0], PLAIN_SNAP), np.uint8)
    out[valid] = flat[(start[:, None] + j[None, :])[valid]]
    return out


class _Rows:
    """The prefix being written for some rows: octets at per-row positions."""

    def __init__(self, pre: np.ndarray, rows: np.ndarray, at: np.ndarray) -> None:
        self.flat, self.base, self.at = pre.reshape(-1), rows * pre.shape[1], at

    def put(self, data: np.ndarray) -> None:
        _put(self.flat, self.base + self.at, data)
        self.at = self.at + (data.shape[1] if data.ndim == 2 else 1)


def _outer_ip(w: _Rows, v6: np.ndarray, proto: int, length: np.ndarray, src: np.ndarray,
              dst: np.ndarray, ident: np.ndarray) -> None:
    """An outer IPv4 or IPv6 header; ``length`` is what follows it."""
    n = v6.shape[0]
    if not v6.any():
        w.put(np.tile(np.array([0x45, 0], np.uint8), (n, 1)))
        w.put(_be(20 + length, 2))
        w.put(_be(ident, 2))
        w.put(np.tile(np.array([0x40, 0, 64, proto, 0, 0], np.uint8), (n, 1)))
        w.put(src[:, :4])
        w.put(dst[:, :4])
    else:
        w.put(np.tile(np.array([0x60, 0, 0, 0], np.uint8), (n, 1)))
        w.put(_be(length, 2))
        w.put(np.tile(np.array([proto, 64], np.uint8), (n, 1)))
        w.put(src)
        w.put(dst)


def records(t: _Trace, p: Plan, sl: slice, snaplen: int, flat: np.ndarray) -> np.ndarray:
    """pcap records of packets ``sl``, encapsulated as planned; ``flat`` is what tracegen's
    ``_records`` wrote for them with a snaplen of PLAIN_SNAP."""
    conv, to_cli = t.conv[sl], t.to_cli[sl]
    m = conv.shape[0]
    orig_plain = t.orig_len[sl]
    plain = _plain_matrix(flat, np.minimum(orig_plain, PLAIN_SNAP))
    kind = p.kind[conv]
    link = t.link_len[sl].astype(np.int64)
    ip_len = t.ip_len[sl].astype(np.int64)
    inner_v6 = t.v6[conv]
    d = to_cli.astype(np.int64)
    pre = np.zeros((m, _PREFIX), np.uint8)
    h = np.zeros(m, np.int64)  # prefix length
    cut = link.copy()  # where the plain frame's kept part starts
    for k in np.unique(kind[kind > 0]).tolist():
        for v6 in (False, True):
            rows = np.flatnonzero((kind == k) & (p.outer_v6[conv] == v6))
            if rows.size:
                h[rows], cut[rows] = _prefix(pre, rows, k, v6, p, t, conv[rows], d[rows],
                                             plain[rows], link[rows], ip_len[rows],
                                             inner_v6[rows], sl)
    plain_kind = kind == 0
    inner_len = link + ip_len - cut
    orig = np.where(plain_kind, orig_plain, np.maximum(h + inner_len, MIN_FRAME))
    h[plain_kind] = 0
    cut[plain_kind] = 0
    caplen = np.minimum(orig, snaplen)
    width = int(caplen.max())
    out = np.zeros((m, PCAP_RECORD + width), np.uint8)
    ts = t.ts_us[sl]
    hdr = np.stack([ts // 1_000_000, ts % 1_000_000, caplen, orig], axis=1)
    out[:, :PCAP_RECORD] = hdr.astype("<u4").view(np.uint8)
    j = np.arange(width)[None, :]
    frame = out[:, PCAP_RECORD:]
    in_prefix = j < h[:, None]
    room = min(width, _PREFIX)
    frame[:, :room][in_prefix[:, :room]] = pre[:, :room][in_prefix[:, :room]]
    src = j - h[:, None] + cut[:, None]
    tail = ~in_prefix & (src < np.minimum(orig_plain, PLAIN_SNAP)[:, None])
    rows = np.broadcast_to(np.arange(m)[:, None], tail.shape)
    frame[tail] = plain[rows[tail], src[tail]]
    return out[np.arange(PCAP_RECORD + width) < (PCAP_RECORD + caplen)[:, None]]


def _prefix(pre: np.ndarray, rows: np.ndarray, k: int, v6: bool, p: Plan, t: _Trace,
            conv: np.ndarray, d: np.ndarray, plain: np.ndarray, link: np.ndarray,
            ip_len: np.ndarray, inner_v6: np.ndarray, sl: slice) -> tuple[np.ndarray, np.ndarray]:
    """Write the prefix of ``rows`` (one kind, one outer IP version); (prefix length, cut)."""
    n = rows.shape[0]
    inner_et = np.where(inner_v6, 0x86DD, 0x0800)
    if k in (_VLAN_MPLS, _VXLAN, _GENEVE):  # a new outer Ethernet, the plain frame inside
        w = _Rows(pre, rows, np.zeros(n, np.int64))
        w.put(np.tile(np.frombuffer(_UNDERLAY_MACS, np.uint8), (n, 1)))
        keep_from = np.full(n, 12 if k == _VLAN_MPLS else 0, np.int64)
    else:  # the plain frame's MACs and tag, a new ethertype
        w = _Rows(pre, rows, np.zeros(n, np.int64))
        tagged = link == 18
        w.put(plain[:, :12])
        if tagged.any():
            _put(w.flat, w.base[tagged] + 12, plain[tagged, 12:16])
            w.at = w.at + 4 * tagged
        keep_from = link
    if k in (_MPLS, _VLAN_MPLS):
        w.put(_be(np.full(n, 0x8847), 2))
        depth = p.depth[conv]
        for i in range(3):
            on = np.flatnonzero(depth > i)
            lse = (p.labels[conv[on], i] << 12) | (((depth[on] - 1) == i) << 8) | (64 - i)
            _put(w.flat, w.base[on] + w.at[on], _be(lse, 4))
            w.at[on] += 4
        if k == _VLAN_MPLS:  # control word, the customer's MACs and VLAN tag
            w.put(np.zeros((n, 4), np.uint8))
            w.put(plain[:, :12])
            w.put(_be(np.full(n, 0x8100), 2))
            w.put(_be(p.pw_vid[conv], 2))
        return w.at, keep_from
    if k == _PPPOE:
        w.put(_be(np.full(n, 0x8864), 2))
        w.put(np.tile(np.array([0x11, 0x00], np.uint8), (n, 1)))
        w.put(_be(p.session[conv], 2))
        w.put(_be(2 + ip_len, 2))
        w.put(_be(np.where(inner_v6, 0x0057, 0x0021), 2))
        return w.at, keep_from
    # tunnels: outer IP, then the tunnel header
    inner_len = link + ip_len - keep_from
    w.put(_be(np.full(n, 0x86DD if v6 else 0x0800), 2))
    tid = p.tid[conv, d]
    if k == _GRE:
        keyed = p.keyed[conv]
        tunnel = 4 + 4 * keyed
    elif k in (_VXLAN, _GTPU):
        tunnel = np.full(n, 16)
    elif k == _GENEVE:
        tunnel = 16 + 8 * p.option[conv]
    else:
        tunnel = np.zeros(n, np.int64)
    src = np.where(d[:, None] == 0, p.a[conv], p.b[conv])
    dst = np.where(d[:, None] == 0, p.b[conv], p.a[conv])
    ident = (np.arange(sl.start, sl.stop)[rows] * 40503) & 0xFFFF
    _outer_ip(w, np.full(n, v6), _OUTER_PROTO[k], tunnel + inner_len, src, dst, ident)
    if k == _GRE:
        w.put(_be(np.where(keyed, 0x2000, 0), 2))
        w.put(_be(inner_et, 2))
        on = np.flatnonzero(keyed)
        _put(w.flat, w.base[on] + w.at[on], _be(tid[on], 4))
        w.at[on] += 4
    elif k in _UDP_PORT:
        sport = np.where(k == _GTPU, _UDP_PORT[k], p.sport[conv, d])
        w.put(_be(sport, 2))
        w.put(_be(np.full(n, _UDP_PORT[k]), 2))
        w.put(_be(tunnel + inner_len, 2))
        w.put(np.zeros((n, 2), np.uint8))  # no UDP checksum
        if k == _VXLAN:
            w.put(_be(np.full(n, 0x08000000), 4))
            w.put(_be(tid << np.uint64(8), 4))
        elif k == _GTPU:
            w.put(_be(np.full(n, 0x30FF), 2))
            w.put(_be(inner_len, 2))
            w.put(_be(tid, 4))
        else:
            option = p.option[conv]
            w.put(_be(2 * option, 1))
            w.put(np.zeros((n, 1), np.uint8))
            w.put(_be(np.full(n, 0x6558), 2))
            w.put(_be(tid << np.uint64(8), 4))
            on = np.flatnonzero(option)  # class 0x0102, type 3, one word of data
            _put(w.flat, w.base[on] + w.at[on],
                 np.tile(np.frombuffer(bytes.fromhex("0102030100c0ffee"), np.uint8),
                         (on.size, 1)))
            w.at[on] += 8
    return w.at, keep_from


def outer_totals(t: _Trace, p: Plan) -> np.ndarray:
    """Per-5-tuple totals (``TOTALS_DTYPE``) of what a meter that opens nothing sees."""
    e = t.endpoints(slice(None))
    conv, to_cli = t.conv, t.to_cli
    kind = p.kind[conv]
    d = to_cli.astype(np.int64)
    n = conv.shape[0]
    key = np.zeros(n, dtype=TOTALS_DTYPE)
    tunnel = np.isin(kind, list(_OUTER_PROTO))
    outer_v6 = p.outer_v6[conv]
    key["ip_version"] = np.where(tunnel, np.where(outer_v6, 6, 4), np.where(e["v6"], 6, 4))
    key["proto"] = e["proto"]
    key["src"], key["dst"] = e["src"], e["dst"]
    icmp = (e["proto"] == 1) | (e["proto"] == 58)
    key["sport"] = e["sport"]
    key["dport"] = np.where(icmp, t.icmp_type.astype(np.int64) << 8, e["dport"])
    for k, proto in _OUTER_PROTO.items():
        on = kind == k
        if not on.any():
            continue
        key["proto"][on] = proto
        ends = (np.where(d[on, None] == 0, p.a[conv[on]], p.b[conv[on]]),
                np.where(d[on, None] == 0, p.b[conv[on]], p.a[conv[on]]))
        key["src"][on], key["dst"][on] = ends
        key["sport"][on] = np.where(k == _GTPU, 2152, p.sport[conv[on], d[on]]) \
            if k in _UDP_PORT else 0
        key["dport"][on] = _UDP_PORT.get(k, 0)
    lengths = _lengths(t, p)
    kv = np.ascontiguousarray(key).view(np.uint8).reshape(n, -1)[:, :TOTALS_DTYPE.fields[
        "packets"][1]]
    kv = np.ascontiguousarray(kv).view(np.dtype((np.void, kv.shape[1]))).ravel()
    uniq, first, inv = np.unique(kv, return_index=True, return_inverse=True)
    out = key[first]
    out["packets"] = np.bincount(inv, minlength=len(uniq))
    out["ip_octets"] = np.bincount(inv, weights=lengths["ip"], minlength=len(uniq))
    out["l2_octets"] = np.bincount(inv, weights=lengths["l2"], minlength=len(uniq))
    out["eth_octets"] = np.bincount(inv, weights=lengths["eth"], minlength=len(uniq))
    return out


def _lengths(t: _Trace, p: Plan) -> dict[str, np.ndarray]:
    """Per packet: the outermost IP total length, and the frame less its outer Ethernet header
    (``l2``: and its 802.1Q tag; ``eth``: 14 octets only)."""
    kind = p.kind[t.conv]
    link = t.link_len.astype(np.int64)
    ip_len = t.ip_len.astype(np.int64)
    tagged = (link == 18) & ~np.isin(kind, [_VLAN_MPLS, _VXLAN, _GENEVE])
    outer_link = 14 + 4 * tagged
    labels = 4 * p.depth[t.conv]
    inner_eth = np.isin(kind, [_VXLAN, _GENEVE])
    inner = np.where(inner_eth, link + ip_len, ip_len)
    v6 = p.outer_v6[t.conv]
    tunnel_hdr = np.select(
        [kind == _GRE, (kind == _VXLAN) | (kind == _GTPU), kind == _GENEVE],
        [4 + 4 * p.keyed[t.conv], 16, 16 + 8 * p.option[t.conv]], 0)
    outer_ip = np.where(v6, 40, 20) + tunnel_hdr + inner
    ip = np.select([np.isin(kind, list(_OUTER_PROTO))], [outer_ip], ip_len)
    # vlan-mpls: labels, control word, the customer's MACs and tag, then the plain frame from
    # its ethertype on
    frame = np.select(
        [kind == _MPLS, kind == _PPPOE, kind == _VLAN_MPLS],
        [labels + ip_len, 8 + ip_len, labels + 4 + 12 + 4 + (link - 12) + ip_len], outer_ip)
    orig = np.maximum(outer_link + frame, MIN_FRAME)
    orig = np.where(kind == 0, t.orig_len, orig)
    return {"ip": ip, "l2": orig - outer_link, "eth": orig - 14}


def write_pcap(t: _Trace, p: Plan, path: Path, snaplen: int, chunk: int) -> None:
    """The trace as a pcap file, encapsulated as ``p`` says (tracegen's header and order)."""
    from tools.tracegen import _records

    n = len(t.ts_us)
    chunk = max(1024, min(chunk, 32_768))  # rows of a few hundred octets, several matrices
    with open(path, "wb") as f:
        f.write(np.array([0xA1B2C3D4], "<u4").tobytes()
                + np.array([2, 4], "<u2").tobytes()
                + np.array([0, 0, snaplen, 1], "<u4").tobytes())
        for lo in range(0, n, chunk):
            sl = slice(lo, min(n, lo + chunk))
            flat = _records(t, sl, PLAIN_SNAP, PCAP_RECORD + PLAIN_SNAP)
            f.write(records(t, p, sl, snaplen, flat).tobytes())
