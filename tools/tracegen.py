"""Deterministic synthetic Ethernet pcap traces for the benchmark and for tests.

    python -m tools.tracegen OUT.pcap --packets 1000000 [--seed 1] [--flow-packets 20]

Real captures cannot be committed and do not scale to the sizes the benchmark needs, so the
trace is synthesised from a seed: the same seed and options give a byte-identical file. It is
built with numpy — conversations, then packets as columns, then all pcap records of a chunk at
once — because a per-packet Python loop (let alone scapy) would take longer than the probe it is
meant to measure.

What the trace holds, and why (each is something a flow meter must get right):

- conversations with heavy-tailed (lognormal) sizes, about ``flow_packets`` packets per
  unidirectional 5-tuple on average, interleaved in time (many are active at once);
- TCP with SYN / SYN-ACK / ACK, data, FIN pairs, some RST endings; UDP; ICMP and ICMPv6 echo;
  GRE (protocol 47, no ports);
- IPv4 and IPv6, some 802.1Q tags, IPv4 fragments (a first fragment with the UDP header and a
  non-first fragment without one, so ports 0);
- a snap length (128 by default) that truncates big frames (caplen < len) while the IP total
  length stays the real one, and Ethernet padding on frames under the 60-octet minimum, so
  "frame length minus link header" and "IP total length" differ;
- timestamps over many minutes with idle gaps longer than 300 s inside some conversations and
  long-lived conversations longer than 1800 s, so idle and active timeouts both fire.

Checksums are left zero: flow meters do not verify them.

``generate()`` also returns what it generated per 5-tuple (packets, IP octets, link-layer
octets), so tests and the benchmark can check a meter's totals against the truth.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

EPOCH_S = 1_767_225_600  # 2026-01-01T00:00:00Z: trace times are plausible, not "now"
TCP, UDP, ICMP, GRE = 0, 1, 2, 3
CLASS_PROTO = np.array([6, 17, 1, 47], dtype=np.uint8)
PROTO_ICMPV6 = 58
IDLE_TIMEOUT_S = 300  # the default idle timeout; gaps are drawn to exceed it
MAX_PAUSE_S = 3 * IDLE_TIMEOUT_S
MIN_FRAME = 60  # Ethernet minimum frame length without FCS
PCAP_RECORD = 16

# TCP flag bytes
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Totals per 5-tuple, what a collector aggregating on proto/src/dst/sport/dport shows. ICMP
# type and code go in the destination port as type*256+code (the NetFlow convention).
TOTALS_DTYPE = np.dtype([
    ("ip_version", "u1"), ("proto", "u1"), ("src", "u1", (16,)), ("dst", "u1", (16,)),
    ("sport", "<u2"), ("dport", "<u2"), ("packets", "<i8"),
    ("ip_octets", "<i8"),  # sum of IP total lengths (RFC 7012 octetDeltaCount)
    ("l2_octets", "<i8"),  # sum of (frame length on the wire - Ethernet/802.1Q header)
    ("eth_octets", "<i8"),  # sum of (frame length on the wire - 14), i.e. tag counted
])
_KEY_BYTES = TOTALS_DTYPE.fields["packets"][1]  # the key fields come first, unpadded


@dataclass(frozen=True)
class Mix:
    """Shares of the trace; conversation-level unless said otherwise."""

    tcp: float = 0.70
    udp: float = 0.20
    icmp: float = 0.06
    gre: float = 0.04
    ipv6: float = 0.20
    vlan: float = 0.10
    tcp_rst: float = 0.08  # TCP conversations that end with a RST instead of FINs
    udp_frag: float = 0.15  # IPv4 UDP conversations sending fragmented datagrams
    idle_gap: float = 0.05  # conversations (>= 4 packets) pausing longer than the idle timeout
    long_lived: float = 0.10  # conversations of >= 30 packets spanning most of the trace


def _cumsum_within(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarting at each group start (groups are contiguous)."""
    c = np.cumsum(values)
    before = c[starts] - values[starts]
    lengths = np.diff(np.append(starts, len(values)))
    return c - np.repeat(before, lengths)


def _be(x: np.ndarray, width: int) -> np.ndarray:
    """Big-endian bytes of unsigned integers, one row per value."""
    dt = {1: ">u1", 2: ">u2", 4: ">u4", 8: ">u8"}[width]
    return np.ascontiguousarray(x.astype(dt)).view(np.uint8).reshape(-1, width)


def _put(flat: np.ndarray, pos: np.ndarray, data: np.ndarray) -> None:
    """Write ``data[i]`` (a row of bytes) at ``flat[pos[i]:]`` for every row at once."""
    if data.ndim == 1:
        flat[pos] = data
    else:
        flat[pos[:, None] + np.arange(data.shape[1])] = data


class _Trace:
    """Per-packet columns of one trace, in capture order."""

    def __init__(self, packets: int, seed: int, flow_packets: float, duration_s: float,
                 mix: Mix, pattern: str = "normal") -> None:
        self.rng = np.random.default_rng(seed)
        self.mix = mix
        self.duration_s = duration_s
        shares = PATTERNS[pattern]
        normal = round(packets * shares.get("normal", 0.0))
        self.plain = np.zeros(0, dtype=bool)  # conversations of normal traffic
        self.oneway = np.zeros(0, dtype=bool)  # only the client sends
        if normal:
            self._conversations(normal, flow_packets)
            self.plain = np.ones(self.c, dtype=bool)
            self.oneway = np.zeros(self.c, dtype=bool)
        hostile = [(kind, share) for kind, share in shares.items() if kind != "normal"]
        left = packets - normal
        for i, (kind, share) in enumerate(hostile):
            want = left if i == len(hostile) - 1 else round(packets * share)
            left -= want
            if want:
                self._append(_HOSTILE[kind](self.rng, want, duration_s, flow_packets))
        self._packets()
        self._times()
        self._sort()

    # -- conversations -------------------------------------------------------------------------

    def _conversations(self, packets: int, flow_packets: float) -> None:
        rng, mix = self.rng, self.mix
        # A conversation has two directions, so about twice the per-5-tuple mean.
        mean, sigma = 2.0 * flow_packets, 1.6
        mu = np.log(max(mean - 1.0, 1.0)) - sigma * sigma / 2
        sizes = np.empty(0, dtype=np.int64)
        while sizes.sum() < packets:
            more = 1 + np.floor(rng.lognormal(mu, sigma, packets // int(mean) + 16))
            sizes = np.concatenate([sizes, np.minimum(more, max(packets // 4, 1)).astype(np.int64)])
        csum = np.cumsum(sizes)
        c = int(np.searchsorted(csum, packets)) + 1
        sizes = sizes[:c]
        sizes[-1] -= int(csum[c - 1]) - packets
        self.n = sizes
        self.c = c

        p = np.array([mix.tcp, mix.udp, mix.icmp, mix.gre])
        self.cls = rng.choice(4, size=c, p=p / p.sum()).astype(np.uint8)
        self.v6 = rng.random(c) < mix.ipv6
        self.vlan = np.where(rng.random(c) < mix.vlan, rng.integers(1, 4095, c), 0)
        # Addresses: clients in 10/8 and 2001:db8:1::/64, servers in 172.16/12 and
        # 2001:db8:2::/64, drawn from pools so hosts recur across conversations.
        cli_host = rng.integers(1, 20_000, c)
        srv_host = rng.integers(1, 2_000, c)
        self.cli = self._addr(cli_host, self.v6, 10 << 8, 0x20010db800010000)
        self.srv = self._addr(srv_host, self.v6, 172 << 8 | 16, 0x20010db800020000)
        self.cli_mac = 0x020000000000 | cli_host.astype(np.uint64)
        self.gw_mac = np.uint64(0x02AA00000001)
        self.cli_port = rng.integers(1024, 65536, c)
        tcp_ports = np.array([80, 443, 443, 443, 22, 25, 993, 8080, 3306, 5432])
        udp_ports = np.array([53, 53, 123, 443, 5060, 514, 4789, 1194])
        self.srv_port = np.where(self.cls == TCP, rng.choice(tcp_ports, c),
                                 rng.choice(udp_ports, c))
        rand_port = rng.random(c) < 0.1
        self.srv_port = np.where(rand_port, rng.integers(1024, 65536, c), self.srv_port)
        self.tos = rng.choice(np.array([0, 0, 0, 0, 0x28, 0xB8]), c)
        self.flow_label = rng.integers(0, 1 << 20, (c, 2))
        self.icmp_id = rng.integers(0, 65536, c)
        self.icmp_answered = rng.random(c) >= 0.1
        # ping payload sizes; 0 makes 28-octet IPv4 packets that need Ethernet padding
        self.icmp_payload = rng.choice(np.array([56, 56, 56, 0, 32, 1400]), c)
        self.frag = (self.cls == UDP) & ~self.v6 & (rng.random(c) < mix.udp_frag) & (sizes >= 2)
        self.rst = (self.cls == TCP) & (rng.random(c) < mix.tcp_rst)
        self.long = (sizes >= 30) & (rng.random(c) < mix.long_lived)
        # Each conversation spans n * mean gap, at most a quarter of the trace (long-lived ones:
        # 80-100 % of it), and starts where it still ends inside the trace, pause included.
        d = self.duration_s
        gap = rng.lognormal(np.log(0.2), 1.5, c)
        span = np.minimum(gap * sizes, d / 4)
        span = np.where(self.long, d * rng.uniform(0.8, 1.0, c), span)
        self.mean_gap_s = span / sizes
        self.start_s = rng.random(c) * np.maximum(d - span - MAX_PAUSE_S, 0.0)
        self.isn = rng.integers(0, 1 << 32, (c, 2), dtype=np.uint64)

    def _append(self, conv: dict[str, np.ndarray]) -> None:
        """Add hostile conversations (``_conversation_arrays``) after the normal ones."""
        if not self.plain.shape[0]:
            self.gw_mac = np.uint64(0x02AA00000001)
            for name in _CONV_FIELDS:
                setattr(self, name, conv[name])
        else:
            for name in _CONV_FIELDS:
                setattr(self, name, np.concatenate([getattr(self, name), conv[name]]))
        self.c = len(self.n)
        self.plain = np.concatenate([self.plain, np.zeros(len(conv["n"]), dtype=bool)])
        self.oneway = np.concatenate([self.oneway, conv["oneway"]])

    @staticmethod
    def _addr(host: np.ndarray, v6: np.ndarray, v4_prefix16: int, v6_prefix64: int) -> np.ndarray:
        out = np.zeros((len(host), 16), dtype=np.uint8)
        h = host.astype(np.uint32)
        v4 = (np.uint32(v4_prefix16) << 16) | h
        out[~v6, :4] = _be(v4[~v6], 4)
        out[v6, :8] = np.frombuffer(v6_prefix64.to_bytes(8, "big"), dtype=np.uint8)
        out[v6, 12:16] = _be(h[v6], 4)
        return out

    # -- packets -------------------------------------------------------------------------------

    def _packets(self) -> None:
        rng, n = self.rng, self.n
        total = int(n.sum())
        self.starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
        conv = np.repeat(np.arange(self.c), n)
        k = np.arange(total) - self.starts[conv]
        nc = n[conv]
        cls = self.cls[conv]
        v6 = self.v6[conv]
        r = rng.random(total)
        r2 = rng.random(total)
        size_draw = rng.integers(0, 1 << 30, total)
        to_cli = np.zeros(total, dtype=bool)  # direction: False client->server
        payload = np.zeros(total, dtype=np.int64)
        flags = np.zeros(total, dtype=np.uint8)
        icmp_type = np.zeros(total, dtype=np.uint8)
        frag = np.zeros(total, dtype=np.uint8)  # 0 none, 1 first, 2 non-first
        mss = np.where(v6, 1440, 1460)

        # TCP: handshake, data both ways (mostly server->client), FIN pair or RST at the end.
        t = cls == TCP
        data = t & (k >= 3)
        to_cli[data] = r[data] < 0.65
        big = data & to_cli & (r2 < 0.7)
        payload[big] = mss[big]
        other = data & ~big
        payload[other] = np.where(to_cli[other], size_draw[other] % (mss[other] + 1),
                                  np.where(r2[other] < 0.6, 0, size_draw[other] % 600 + 1))
        flags[data] = np.where(payload[data] > 0, PSH | ACK, ACK)
        flags[t & (k == 0)] = SYN
        syn_ack = t & (k == 1)
        to_cli[syn_ack] = True
        flags[syn_ack] = np.where(nc[syn_ack] == 2, RST | ACK, SYN | ACK)  # closed port
        flags[t & (k == 2)] = ACK
        fin_ok = t & (nc >= 6) & ~self.rst[conv]
        fin_c = fin_ok & (k == nc - 2)
        fin_s = fin_ok & (k == nc - 1)
        to_cli[fin_c], to_cli[fin_s] = False, True
        flags[fin_c | fin_s] = FIN | ACK
        payload[fin_c | fin_s] = 0
        rst_end = t & self.rst[conv] & (nc >= 4) & (k == nc - 1)
        flags[rst_end] = RST
        payload[rst_end] = 0

        # UDP: requests and answers; fragmenting conversations send pairs of fragments.
        u = cls == UDP
        to_cli[u] = (k[u] > 0) & (r[u] < 0.5)
        to_cli[u & self.oneway[conv]] = False
        small = r2 < 0.6
        udp_max = np.where(v6, 1452, 1472)
        payload[u] = np.where(small[u], size_draw[u] % 200,
                              np.minimum(size_draw[u] % 1500, udp_max[u]))
        fr = u & self.frag[conv] & (k < nc - (nc % 2))
        first = fr & (k % 2 == 0)
        rest = fr & (k % 2 == 1)
        frag[first], frag[rest] = 1, 2
        to_cli[rest] = to_cli[np.flatnonzero(rest) - 1]
        # first fragment: 1480 octets of IP payload = UDP header + 1472; the rest follows.
        payload[first] = 1472
        payload[rest] = size_draw[rest] % 1473 + 8

        # ICMP echo: requests on even positions, replies on odd ones (unless unanswered).
        i = cls == ICMP
        reply = i & (k % 2 == 1) & self.icmp_answered[conv]
        to_cli[reply] = True
        icmp_type[i] = np.where(v6[i], np.where(reply[i], 129, 128), np.where(reply[i], 0, 8))
        payload[i] = np.minimum(self.icmp_payload[conv[i]], np.where(v6[i], 1452, 1472))

        # GRE: both directions; some empty keepalives (24-octet packets, padded on the wire).
        g = cls == GRE
        to_cli[g] = r[g] < 0.5
        gre_max = np.where(v6[g], 1456, 1476)  # IP total length at most 1500
        payload[g] = np.where(r2[g] < 0.1, 0, size_draw[g] % (gre_max - 19) + 20)

        # Header lengths and the IP total length.
        l4 = np.select([cls == TCP, cls == UDP, cls == ICMP], [20, 8, 8], 4)
        l4 = np.where((cls == TCP) & ((flags & SYN) != 0), 24, l4)  # SYN carries an MSS option
        l4 = np.where(frag == 2, 0, l4)
        ip_hdr = np.where(v6, 40, 20)
        self.ip_len = (ip_hdr + l4 + payload).astype(np.int64)
        # The first fragment's UDP length covers the whole datagram.
        self.udp_len = (8 + payload).astype(np.int64)
        self.udp_len[first] = 8 + 1472 + payload[np.flatnonzero(first) + 1]
        link = 14 + 4 * (self.vlan[conv] > 0)
        self.orig_len = np.maximum(link + self.ip_len, MIN_FRAME)

        self.conv, self.k, self.to_cli = conv, k, to_cli
        self.payload, self.tcp_flags, self.icmp_type, self.frag = payload, flags, icmp_type, frag
        self.l4_len, self.link_len = l4, link

    def _times(self) -> None:
        """Per-conversation clocks: exponential gaps, some idle pauses, fragments back to back."""
        rng, conv, k = self.rng, self.conv, self.k
        gap = rng.exponential(1.0, len(conv))
        gap[k == 0] = 0.0
        # Scale so each conversation spans exactly its planned time and stays inside the trace.
        scale = self.mean_gap_s * (self.n - 1) / np.maximum(np.add.reduceat(gap, self.starts), 1e-9)
        gap *= scale[conv]
        gap[self.frag == 2] = 20e-6
        pause = (self.n >= 4) & (rng.random(self.c) < self.mix.idle_gap) & ~self.long & self.plain
        where = self.starts + 2 + (rng.integers(0, 1 << 30, self.c) % np.maximum(self.n - 2, 1))
        where = where[pause]
        where -= (self.frag[where] == 2).astype(np.int64)  # never split a fragment pair
        gap[where] += rng.uniform(IDLE_TIMEOUT_S + 30, MAX_PAUSE_S, len(where))
        rel = self.start_s[conv] + _cumsum_within(gap, self.starts)
        self.ts_us = EPOCH_S * 1_000_000 + np.round(rel * 1e6).astype(np.int64)

    def _sort(self) -> None:
        order = np.argsort(self.ts_us, kind="stable")  # stable: keeps in-conversation order
        for name in ("ts_us", "conv", "k", "to_cli", "payload", "tcp_flags", "icmp_type", "frag",
                     "l4_len", "link_len", "ip_len", "udp_len", "orig_len"):
            setattr(self, name, getattr(self, name)[order])

    # -- 5-tuples ------------------------------------------------------------------------------

    def endpoints(self, sl: slice | np.ndarray) -> dict[str, np.ndarray]:
        """Per-packet addresses, ports and the like for packets ``sl`` (capture order)."""
        conv, to_cli = self.conv[sl], self.to_cli[sl]
        d = to_cli[:, None]
        src = np.where(d, self.srv[conv], self.cli[conv])
        dst = np.where(d, self.cli[conv], self.srv[conv])
        cls = self.cls[conv]
        has_ports = ((cls == TCP) | (cls == UDP)) & (self.frag[sl] != 2)
        sport = np.where(to_cli, self.srv_port[conv], self.cli_port[conv])
        dport = np.where(to_cli, self.cli_port[conv], self.srv_port[conv])
        sport = np.where(has_ports, sport, 0)
        dport = np.where(has_ports, dport, 0)
        v6 = self.v6[conv]
        proto = np.where((cls == ICMP) & v6, PROTO_ICMPV6, CLASS_PROTO[cls])
        return {"src": src, "dst": dst, "sport": sport, "dport": dport, "proto": proto,
                "v6": v6, "cls": cls}

    def totals(self) -> np.ndarray:
        """Per-5-tuple packets and octets of the whole trace, sorted by key.

        Packets are first grouped on a cheap integer (conversation, direction, non-first
        fragment, ICMP type), then the groups on their 5-tuples, since different conversations
        can share one (pings between the same hosts, GRE)."""
        g = (self.conv.astype(np.int64) * 2 + self.to_cli) * 2 + (self.frag == 2)
        g = (g << 8) | self.icmp_type
        _, rep, ginv = np.unique(g, return_index=True, return_inverse=True)
        e = self.endpoints(rep)
        dport = np.where(e["cls"] == ICMP, self.icmp_type[rep].astype(np.int64) << 8, e["dport"])
        key = np.zeros(len(rep), dtype=TOTALS_DTYPE)
        key["ip_version"] = np.where(e["v6"], 6, 4)
        key["proto"], key["src"], key["dst"] = e["proto"], e["src"], e["dst"]
        key["sport"], key["dport"] = e["sport"], dport
        kv = np.ascontiguousarray(key).view(np.uint8).reshape(len(key), -1)[:, :_KEY_BYTES]
        kv = np.ascontiguousarray(kv).view(np.dtype((np.void, _KEY_BYTES))).ravel()
        uniq, first, kinv = np.unique(kv, return_index=True, return_inverse=True)
        inv = kinv[ginv]
        out = key[first]
        out["packets"] = np.bincount(inv, minlength=len(uniq))
        out["ip_octets"] = np.bincount(inv, weights=self.ip_len, minlength=len(uniq))
        out["l2_octets"] = np.bincount(inv, weights=self.orig_len - self.link_len,
                                       minlength=len(uniq))
        out["eth_octets"] = np.bincount(inv, weights=self.orig_len - 14, minlength=len(uniq))
        self.key_inv = inv
        return out

    def max_active(self, idle_s: float, active_s: float) -> int:
        """Most flow records a cache with these timeouts holds at once (an estimate).

        A record lives from its first packet until ``idle_s`` after its last one; a new record
        starts after an idle gap or once the record is ``active_s`` old. FIN/RST expiry is
        ignored, so this is an upper bound for caches that expire TCP flows early.
        """
        inv = self.key_inv
        order = np.lexsort((self.ts_us, inv))
        key, ts = inv[order], self.ts_us[order]
        new = np.ones(len(ts), dtype=bool)
        new[1:] = (key[1:] != key[:-1]) | (ts[1:] - ts[:-1] > idle_s * 1e6)
        rec = np.cumsum(new) - 1
        rec_start = ts[new]
        # Active timeout: cut every active_s from the record's start (per-record, vectorised).
        piece = (ts - rec_start[rec]) // int(active_s * 1e6)
        new2 = new.copy()
        new2[1:] |= piece[1:] != piece[:-1]
        starts = ts[new2]
        ends = np.maximum.reduceat(ts, np.flatnonzero(new2)) + int(idle_s * 1e6)
        ends = np.minimum(ends, self.ts_us[-1])  # the end of the trace flushes everything
        ev_t = np.concatenate([starts, ends])
        ev_d = np.concatenate([np.ones(len(starts), np.int64), -np.ones(len(ends), np.int64)])
        o = np.lexsort((-ev_d, ev_t))  # at equal times count the arrival before the expiry
        return int(np.cumsum(ev_d[o]).max())


# Traffic patterns: shares of the packets. The hostile ones are what a sniffing host meets on
# its worst day, each flow one or two packets (or far more flows alive at once than a default
# cache of 65536 holds), so that the flow cache is full and busy evicting.
PATTERNS: dict[str, dict[str, float]] = {
    "normal": {"normal": 1.0},
    "scan": {"scan": 1.0},  # one source probing many destination hosts and ports
    "synflood": {"synflood": 1.0},  # SYNs from random spoofed sources to one server
    "concurrent": {"concurrent": 1.0},  # many long-lived (one-way) flows alive at once
    "mixed": {"normal": 0.4, "scan": 0.2, "synflood": 0.2, "concurrent": 0.2},
}

# Per-conversation arrays of a _Trace (what _conversations draws).
_CONV_FIELDS = ("n", "cls", "v6", "vlan", "cli", "srv", "cli_mac", "cli_port", "srv_port", "tos",
                "flow_label", "icmp_id", "icmp_answered", "icmp_payload", "frag", "rst", "long",
                "mean_gap_s", "start_s", "isn")


def _conversation_arrays(rng: np.random.Generator, sizes: np.ndarray, cls: int
                         ) -> dict[str, np.ndarray]:
    """Plain IPv4 conversations of one class: no VLAN, no fragments, no pauses, addresses and
    ports left for the pattern to fill."""
    c = len(sizes)
    return {
        "n": sizes.astype(np.int64), "cls": np.full(c, cls, np.uint8),
        "v6": np.zeros(c, dtype=bool), "vlan": np.zeros(c, np.int64),
        "cli": np.zeros((c, 16), np.uint8), "srv": np.zeros((c, 16), np.uint8),
        "cli_mac": np.zeros(c, np.uint64), "cli_port": np.zeros(c, np.int64),
        "srv_port": np.zeros(c, np.int64), "tos": np.zeros(c, np.int64),
        "flow_label": np.zeros((c, 2), np.int64), "icmp_id": np.zeros(c, np.int64),
        "icmp_answered": np.ones(c, dtype=bool), "icmp_payload": np.zeros(c, np.int64),
        "frag": np.zeros(c, dtype=bool), "rst": np.zeros(c, dtype=bool),
        "long": np.zeros(c, dtype=bool), "mean_gap_s": np.full(c, 0.001),
        "start_s": np.zeros(c), "isn": rng.integers(0, 1 << 32, (c, 2), dtype=np.uint64),
        "oneway": np.zeros(c, dtype=bool),
    }


def _sizes(rng: np.random.Generator, packets: int, two: float) -> np.ndarray:
    """Conversations of one packet, or two (an answer) with probability ``two``, summing to
    ``packets``."""
    sizes = 1 + (rng.random(packets) < two).astype(np.int64)
    c = int(np.searchsorted(np.cumsum(sizes), packets)) + 1
    sizes = sizes[:c]
    sizes[-1] -= int(sizes.sum()) - packets
    return sizes


def _v4(x: np.ndarray) -> np.ndarray:
    out = np.zeros((len(x), 16), np.uint8)
    out[:, :4] = _be(x.astype(np.uint32), 4)
    return out


def _scan(rng: np.random.Generator, packets: int, d: float, _fp: float) -> dict[str, np.ndarray]:
    """A TCP SYN scan from one host (one source port, as nmap uses) over a /20 and the low
    1024 ports, in time order; 30 % of the probes answered by RST/ACK (a closed port)."""
    sizes = _sizes(rng, packets, 0.3)
    c = len(sizes)
    conv = _conversation_arrays(rng, sizes, TCP)
    conv["cli"] = _v4(np.full(c, (10 << 24) | (66 << 16) | (6 << 8) | 6))
    conv["cli_mac"][:] = 0x020000000666
    conv["cli_port"][:] = 61000
    conv["srv"] = _v4((172 << 24) | (16 << 16) | rng.integers(1, 4096, c))
    conv["srv_port"] = rng.integers(1, 1025, c)
    conv["start_s"] = np.sort(rng.random(c)) * d * 0.999
    return conv


def _synflood(rng: np.random.Generator, packets: int, d: float, _fp: float
              ) -> dict[str, np.ndarray]:
    """SYNs to one web server from random spoofed sources and ports; 10 % answered."""
    sizes = _sizes(rng, packets, 0.1)
    c = len(sizes)
    conv = _conversation_arrays(rng, sizes, TCP)
    conv["cli"] = _v4(rng.integers(1 << 24, 224 << 24, c))
    conv["cli_mac"][:] = 0x020000000bad
    conv["cli_port"] = rng.integers(1024, 65536, c)
    conv["srv"] = _v4(np.full(c, (172 << 24) | (16 << 16) | 80))
    conv["srv_port"][:] = 80
    conv["start_s"] = rng.random(c) * d * 0.999
    return conv


def _concurrent(rng: np.random.Generator, packets: int, d: float, flow_packets: float
                ) -> dict[str, np.ndarray]:
    """Long-lived one-way UDP streams (telemetry, syslog, media) of ``flow_packets`` packets,
    each spanning 80-100 % of the trace: packets / flow_packets flows alive at once for most
    of it. One-way, so a flow is one cache entry for a unidirectional meter and for a
    bidirectional one (softflowd) alike."""
    per = max(1, round(flow_packets))
    sizes = np.full(max(1, packets // per), per, np.int64)
    sizes[-1] += packets - int(sizes.sum())
    c = len(sizes)
    conv = _conversation_arrays(rng, sizes, UDP)
    host = rng.integers(0, 1 << 20, c)
    conv["cli"] = _v4((10 << 24) | (host << 4) | 1)
    conv["cli_mac"] = 0x020000000000 | host.astype(np.uint64)
    conv["cli_port"] = rng.integers(1024, 65536, c)
    conv["srv"] = _v4((172 << 24) | (16 << 16) | rng.integers(1, 256, c))
    conv["srv_port"] = rng.choice(np.array([53, 123, 443, 514, 4500]), c)
    span = d * rng.uniform(0.8, 1.0, c)
    conv["start_s"] = rng.random(c) * (d - span)
    conv["mean_gap_s"] = span / sizes
    conv["long"][:] = True
    conv["oneway"][:] = True
    return conv


_HOSTILE = {"scan": _scan, "synflood": _synflood, "concurrent": _concurrent}


def default_duration_s(packets: int) -> float:
    """40 minutes per million packets, at least 40 minutes: the packet rate and the number of
    concurrent flows stay the same for bigger traces, and every trace is long enough for
    300 s idle and 1800 s active timeouts."""
    return 2400.0 * max(1.0, packets / 1_000_000)


def _write_pcap(t: _Trace, path: Path, snaplen: int, chunk: int) -> None:
    n = len(t.ts_us)
    width = PCAP_RECORD + min(snaplen, int(t.orig_len.max()) if n else 0)
    width = max(width, PCAP_RECORD + 98)  # room for the longest header stack
    chunk = max(1024, min(chunk, (64 << 20) // width))
    with open(path, "wb") as f:
        f.write(np.array([0xA1B2C3D4], "<u4").tobytes()
                + np.array([2, 4], "<u2").tobytes()
                + np.array([0, 0, snaplen, 1], "<u4").tobytes())
        for lo in range(0, n, chunk):
            f.write(_records(t, slice(lo, min(n, lo + chunk)), snaplen, width).tobytes())


def _records(t: _Trace, sl: slice, snaplen: int, width: int) -> np.ndarray:
    """pcap records (header + captured bytes) of packets ``sl``, concatenated."""
    e = t.endpoints(sl)
    m = len(e["cls"])
    caplen = np.minimum(t.orig_len[sl], snaplen)
    mat = np.zeros((m, width), dtype=np.uint8)
    ts = t.ts_us[sl]
    hdr = np.stack([ts // 1_000_000, ts % 1_000_000, caplen, t.orig_len[sl]], axis=1)
    mat[:, :PCAP_RECORD] = hdr.astype("<u4").view(np.uint8)
    flat = mat.reshape(-1)
    row = np.arange(m, dtype=np.int64) * width + PCAP_RECORD  # frame start per row
    conv, to_cli = t.conv[sl], t.to_cli[sl]

    # Ethernet (+ 802.1Q)
    cli_mac = t.cli_mac[conv]
    gw = np.full(m, t.gw_mac, dtype=np.uint64)
    dmac = np.where(to_cli, cli_mac, gw)
    smac = np.where(to_cli, gw, cli_mac)
    _put(flat, row, _be(dmac, 8)[:, 2:])
    _put(flat, row + 6, _be(smac, 8)[:, 2:])
    vid = t.vlan[conv]
    tagged = vid > 0
    v6 = e["v6"]
    ethertype = np.where(v6, 0x86DD, 0x0800)
    _put(flat, row + 12, _be(np.where(tagged, 0x8100, ethertype), 2))
    tr = row[tagged]
    _put(flat, tr + 14, _be(vid[tagged], 2))
    _put(flat, tr + 16, _be(ethertype[tagged], 2))
    l3 = row + t.link_len[sl]

    ip_len = t.ip_len[sl]
    proto = e["proto"].astype(np.uint8)
    tos = t.tos[conv]
    # IPv4
    a = ~v6
    p4 = l3[a]
    flat[p4] = 0x45
    flat[p4 + 1] = tos[a]
    _put(flat, p4 + 2, _be(ip_len[a], 2))
    frag = t.frag[sl]
    ident = (conv * 7919 + (t.k[sl] - (frag == 2))) & 0xFFFF  # a fragment pair shares its id
    _put(flat, p4 + 4, _be(ident[a], 2))
    fo = np.select([frag == 1, frag == 2, e["cls"] == TCP], [0x2000, 1480 // 8, 0x4000], 0)
    _put(flat, p4 + 6, _be(fo[a], 2))
    flat[p4 + 8] = np.where(to_cli[a], 52, 64)
    flat[p4 + 9] = proto[a]
    _put(flat, p4 + 12, e["src"][a, :4])
    _put(flat, p4 + 16, e["dst"][a, :4])
    # IPv6
    p6 = l3[v6]
    fl = t.flow_label[conv[v6], to_cli[v6].astype(np.int64)]
    word = (6 << 28) | (tos[v6].astype(np.int64) << 20) | fl
    _put(flat, p6, _be(word, 4))
    _put(flat, p6 + 4, _be(ip_len[v6] - 40, 2))
    flat[p6 + 6] = proto[v6]
    flat[p6 + 7] = np.where(to_cli[v6], 52, 64)
    _put(flat, p6 + 8, e["src"][v6])
    _put(flat, p6 + 24, e["dst"][v6])

    l4 = l3 + np.where(v6, 40, 20)
    cls = e["cls"]
    # TCP
    s = cls == TCP
    ps = l4[s]
    _put(flat, ps, _be(e["sport"][s], 2))
    _put(flat, ps + 2, _be(e["dport"][s], 2))
    isn = t.isn[conv[s], to_cli[s].astype(np.int64)]
    seq = (isn + t.k[sl][s].astype(np.uint64) * np.uint64(1460)) & np.uint64(0xFFFFFFFF)
    _put(flat, ps + 4, _be(seq, 4))
    flags = t.tcp_flags[sl][s]
    peer = t.isn[conv[s], 1 - to_cli[s].astype(np.int64)]
    ack = np.where((flags & ACK) != 0, (peer + np.uint64(1)) & np.uint64(0xFFFFFFFF), 0)
    _put(flat, ps + 8, _be(ack, 4))
    l4len = t.l4_len[sl][s]
    flat[ps + 12] = (l4len // 4) << 4
    flat[ps + 13] = flags
    _put(flat, ps + 14, _be(np.full(len(ps), 64240), 2))
    opt = l4len == 24
    _put(flat, ps[opt] + 20, np.tile(np.array([2, 4, 0x05, 0xB4], np.uint8), (int(opt.sum()), 1)))
    # UDP (not on non-first fragments)
    u = (cls == UDP) & (frag != 2)
    pu = l4[u]
    _put(flat, pu, _be(e["sport"][u], 2))
    _put(flat, pu + 2, _be(e["dport"][u], 2))
    _put(flat, pu + 4, _be(np.minimum(t.udp_len[sl][u], 0xFFFF), 2))
    # ICMP / ICMPv6 echo
    i = cls == ICMP
    pi = l4[i]
    flat[pi] = t.icmp_type[sl][i]
    _put(flat, pi + 4, _be(t.icmp_id[conv[i]], 2))
    _put(flat, pi + 6, _be(t.k[sl][i] // 2, 2))
    # GRE: no flags, version 0, carrying IPv4
    g = cls == GRE
    _put(flat, l4[g] + 2, _be(np.full(int(g.sum()), 0x0800), 2))
    inner = g & (t.payload[sl] >= 20)  # the start of an inner IPv4 header, as tshark expects
    flat[l4[inner] + 4] = 0x45
    _put(flat, l4[inner] + 6, _be(t.payload[sl][inner], 2))

    keep = np.arange(width) < (PCAP_RECORD + caplen)[:, None]
    return mat[keep]


def generate(path: str | Path, packets: int, seed: int = 1, *, flow_packets: float | None = None,
             duration_s: float | None = None, snaplen: int = 128, mix: Mix | None = None,
             totals: bool = False, chunk: int = 262_144, pattern: str = "normal",
             encap: dict[str, float] | None = None) -> dict[str, Any]:
    """Write a trace to ``path`` and return a summary of what is in it.

    With ``totals=True`` the summary has ``"totals"``: a structured array (``TOTALS_DTYPE``)
    of packets and octets per 5-tuple, and ``"max_active_flows"`` for the default timeouts.
    ``encap``: shares of the conversations that travel in MPLS, PPPoE or a tunnel
    (``tools.encap``); ``"totals"`` are then the inner packets' and ``"outer_totals"`` what a
    meter that opens nothing sees.
    """
    if packets < 1:
        raise ValueError("packets must be at least 1")
    if snaplen < 98:
        raise ValueError("snaplen must be at least 98 (the longest header stack)")
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r} (known: {', '.join(PATTERNS)})")
    mix = mix or Mix()
    if encap:
        from tools import encap as enc

        if snaplen < enc.MIN_SNAPLEN:
            raise ValueError(f"snaplen must be at least {enc.MIN_SNAPLEN} with --encap "
                             "(the longest header stack in a tunnel)")
        mix = replace(mix, gre=0.0)  # its GRE stubs are no packets to find in a tunnel
    if flow_packets is None:
        flow_packets = 4.0 if pattern == "concurrent" else 20.0
    duration = default_duration_s(packets) if duration_s is None else duration_s
    t = _Trace(packets, seed, flow_packets, duration, mix, pattern)
    if encap:
        plan = enc.plan(t, encap, seed)
        enc.write_pcap(t, plan, Path(path), snaplen, chunk)
    else:
        _write_pcap(t, Path(path), snaplen, chunk)
    tot = t.totals()
    cls = t.cls[t.conv]
    summary: dict[str, Any] = {
        "path": str(path), "packets": packets, "seed": seed, "snaplen": snaplen,
        "pattern": pattern,
        "flow_packets": flow_packets, "mix": asdict(mix),
        "conversations": int(t.c), "flows": len(tot),
        "packets_per_flow": round(packets / len(tot), 2),
        "duration_s": round((int(t.ts_us[-1]) - int(t.ts_us[0])) / 1e6, 3),
        "first_ts_us": int(t.ts_us[0]), "last_ts_us": int(t.ts_us[-1]),
        "share": {
            "tcp": round(float(np.mean(cls == TCP)), 4),
            "udp": round(float(np.mean(cls == UDP)), 4),
            "icmp": round(float(np.mean(cls == ICMP)), 4),
            "gre": round(float(np.mean(cls == GRE)), 4),
            "ipv6": round(float(np.mean(t.v6[t.conv])), 4),
            "vlan": round(float(np.mean(t.vlan[t.conv] > 0)), 4),
        },
        "fragments_first": int(np.sum(t.frag == 1)),
        "fragments_nonfirst": int(np.sum(t.frag == 2)),
        "truncated": int(np.sum(t.orig_len > snaplen)),
        "padded": int(np.sum(t.link_len + t.ip_len < MIN_FRAME)),
        "tcp_syn": int(np.sum((cls == TCP) & (t.tcp_flags == SYN))),
        "tcp_fin": int(np.sum((t.tcp_flags & FIN) != 0)),
        "tcp_rst": int(np.sum((t.tcp_flags & RST) != 0)),
        "ip_octets": int(t.ip_len.sum()),
        "file_bytes": Path(path).stat().st_size,
    }
    if encap:
        kinds = plan.kind[t.conv]
        summary["encap"] = {k: int(np.sum(kinds == i)) for i, k in enumerate(enc.KINDS, 1)}
        summary["outer_flows"] = len(enc.outer_totals(t, plan))
    if totals:
        summary["totals"] = tot
        summary["max_active_flows"] = t.max_active(IDLE_TIMEOUT_S, 1800)
        if encap:
            summary["outer_totals"] = enc.outer_totals(t, plan)
    return summary


def parse_shares(text: str, known: list[str], option: str, what: str = "share"
                 ) -> dict[str, float]:
    """``name=share,...`` with names from ``known``; shares are fractions in [0, 1]."""
    changes: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if name not in known:
            raise ValueError(f"{option}: unknown {what} {name!r} (known: {', '.join(known)})")
        try:
            share = float(value)
        except ValueError:
            raise ValueError(f"{option}: {name}={value!r} is not a number") from None
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{option}: {name}={share} is not between 0 and 1")
        changes[name] = share
    return changes


def parse_mix(text: str) -> Mix:
    """``name=share,...`` over the defaults; shares are fractions in [0, 1]."""
    changes = parse_shares(text, sorted(f.name for f in fields(Mix)), "--mix")
    mix = replace(Mix(), **changes)
    if mix.tcp + mix.udp + mix.icmp + mix.gre <= 0:
        raise ValueError("--mix: tcp, udp, icmp and gre shares are all 0")
    return mix


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.tracegen",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("out", help="pcap file to write")
    ap.add_argument("--packets", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flow-packets", type=float, default=None,
                    help="mean packets per unidirectional 5-tuple (default 20; 4 for the "
                         "concurrent pattern, which keeps packets / N flows alive at once)")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds the trace spans (default 2400 per million packets, min 2400)")
    ap.add_argument("--snaplen", type=int, default=128)
    ap.add_argument("--pattern", choices=list(PATTERNS), default="normal",
                    help="normal traffic (default), or what a meter must survive: scan (one "
                         "source, many destination hosts and ports), synflood (random spoofed "
                         "sources), concurrent (more long-lived one-way flows alive at once "
                         "than a default cache holds), mixed (40 %% normal, 20 %% of each other)")
    ap.add_argument("--mix", default="", metavar="NAME=SHARE,...",
                    help="override shares, e.g. ipv6=1,vlan=0 (names: "
                         + ", ".join(f.name for f in fields(Mix)) + ")")
    ap.add_argument("--encap", default="", metavar="KIND=SHARE,...",
                    help="conversations that travel encapsulated, e.g. mpls=0.1,vxlan=0.1 "
                         "(kinds: mpls, pppoe, vlan-mpls, gre, vxlan, geneve, gtpu, ipip, "
                         "6in4; see tools/encap.py); needs --snaplen 160 or more")
    ap.add_argument("--totals", metavar="NPZ",
                    help="also write the expected per-5-tuple totals to this .npz file "
                         "(with --encap: the inner totals, and the outer ones as outer_totals)")
    args = ap.parse_args(argv)
    try:
        encap = None
        if args.encap:
            from tools.encap import parse_encap

            encap = parse_encap(args.encap)
        s = generate(args.out, args.packets, args.seed, flow_packets=args.flow_packets,
                     duration_s=args.duration, snaplen=args.snaplen, mix=parse_mix(args.mix),
                     totals=bool(args.totals), pattern=args.pattern, encap=encap)
    except (ValueError, OSError) as exc:
        print(f"tracegen: {exc}", file=sys.stderr)
        return 2
    if args.totals:
        extra = {"outer_totals": s.pop("outer_totals")} if "outer_totals" in s else {}
        np.savez_compressed(args.totals, totals=s.pop("totals"), **extra)
    print(json.dumps(s, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
