"""Write the small captures committed under ``pcaps/`` (deterministic: same bytes every run).

    python -m tools.make_pcaps [OUT_DIR]

Each file exercises one thing the capture layer must get right, and the tests in
``tests/capture/`` check the decoded values against what is built here. Packets are made with
scapy; records are written by this script (not scapy's writers) so timestamps, snap lengths and
link types are exactly what is asked, independent of the scapy version.

Addresses are from the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32) and MACs are locally administered.
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Packet, Raw

BASE_TS = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CLIENT_MAC = "02:00:00:00:00:01"
ROUTER_MAC = "02:00:00:00:00:fe"
C4, C6 = "192.0.2.10", "2001:db8::10"
WEB4, WEB6 = "198.51.100.20", "2001:db8:1::80"
DNS4, DNS6 = "203.0.113.53", "2001:db8:1::53"

Record = tuple[float, bytes]  # (timestamp, frame bytes)

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276


def write_pcap(path: Path, records: Iterable[Record], linktype: int, snaplen: int = 65535) -> int:
    """Classic little-endian microsecond pcap; frames longer than ``snaplen`` are cut."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    count = 0
    for ts, frame in records:
        sec, usec = divmod(round(ts * 1_000_000), 1_000_000)
        data = frame[:snaplen]
        out.append(struct.pack("<IIII", sec, usec, len(data), len(frame)) + data)
        count += 1
    path.write_bytes(b"".join(out))
    return count


def pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def pcapng_block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def write_pcapng(path: Path, records: Iterable[Record], linktype: int) -> int:
    """Minimal pcapng: section header, one interface (microsecond stamps), enhanced packets."""
    blocks = [
        pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
        pcapng_block(0x00000001, struct.pack("<HHI", linktype, 0, 0)),
    ]
    count = 0
    for ts, frame in records:
        stamp = round(ts * 1_000_000)
        head = struct.pack("<IIIII", 0, stamp >> 32, stamp & 0xFFFFFFFF, len(frame), len(frame))
        blocks.append(pcapng_block(0x00000006, head + pad4(frame)))
        count += 1
    path.write_bytes(b"".join(blocks))
    return count


def eth(payload: Packet, outbound: bool = True) -> Packet:
    src, dst = (CLIENT_MAC, ROUTER_MAC) if outbound else (ROUTER_MAC, CLIENT_MAC)
    return Ether(src=src, dst=dst) / payload


def _tcp_conversation(
    rng: random.Random, t: float, ip_c: Packet, ip_s: Packet, sport: int, dport: int,
    replies: int, reset: bool = False,
) -> list[Record]:
    """A TCP connection: handshake, request, ``replies`` data segments, FIN/ACK teardown.

    Data segments are full-sized for a 1500-octet MTU with TCP timestamps (MSS minus 12), so
    the capture can be replayed onto a real link (tcpreplay on a veth) without any frame
    being too long to send.
    """
    out: list[Record] = []
    segment = 1500 - len(ip_c) - 20 - 12
    cseq, sseq = rng.randrange(1 << 32), rng.randrange(1 << 32)

    def add(dt: float, outbound: bool, flags: str, payload: bytes = b"") -> None:
        nonlocal t, cseq, sseq
        t += dt
        if outbound:
            seg = ip_c / TCP(sport=sport, dport=dport, flags=flags, seq=cseq, ack=sseq,
                             window=64240)
            cseq = (cseq + len(payload) + ("S" in flags or "F" in flags)) % (1 << 32)
        else:
            seg = ip_s / TCP(sport=dport, dport=sport, flags=flags, seq=sseq, ack=cseq,
                             window=65160)
            sseq = (sseq + len(payload) + ("S" in flags or "F" in flags)) % (1 << 32)
        out.append((t, bytes(eth(seg / Raw(payload) if payload else seg, outbound))))

    add(0.0, True, "S")
    if reset:
        add(0.0004, False, "RA")
        return out
    add(0.012, False, "SA")
    add(0.0003, True, "A")
    add(0.0002, True, "PA", b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n")
    for _ in range(replies):
        add(rng.uniform(0.001, 0.02), False, "A", bytes(rng.getrandbits(8) for _ in range(segment)))
        add(0.0002, True, "A")
    add(0.003, False, "PA", b"0\r\n\r\n")
    add(0.5, True, "FA")
    add(0.011, False, "FA")
    add(0.0002, True, "A")
    return out


def _dns(rng: random.Random, t: float, v6: bool, name: str) -> list[Record]:
    client, server = (C6, DNS6) if v6 else (C4, DNS4)
    ipc = (IPv6(src=client, dst=server, fl=rng.randrange(1 << 20)) if v6
           else IP(src=client, dst=server, id=rng.randrange(1 << 16)))
    ips = (IPv6(src=server, dst=client, hlim=58) if v6
           else IP(src=server, dst=client, ttl=57, id=rng.randrange(1 << 16)))
    sport, qid = rng.randrange(32768, 61000), rng.randrange(1 << 16)
    query = DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype="AAAA" if v6 else "A"))
    answer = DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype="AAAA" if v6 else "A"),
                 an=DNSRR(rrname=name, type="AAAA" if v6 else "A", ttl=300,
                          rdata=WEB6 if v6 else WEB4))
    reply = eth(ips / UDP(sport=53, dport=sport) / answer, False)
    return [
        (t, bytes(eth(ipc / UDP(sport=sport, dport=53) / query))),
        (t + rng.uniform(0.005, 0.03), bytes(reply)),
    ]


def _pings(t: float, v6: bool, count: int, ident: int) -> list[Record]:
    out: list[Record] = []
    for seq in range(count):
        payload = bytes(range(56))
        if v6:
            req = IPv6(src=C6, dst=WEB6) / ICMPv6EchoRequest(id=ident, seq=seq, data=payload)
            rep = IPv6(src=WEB6, dst=C6, hlim=60) / ICMPv6EchoReply(id=ident, seq=seq, data=payload)
        else:
            req = IP(src=C4, dst=WEB4, id=100 + seq) / ICMP(type=8, id=ident, seq=seq)
            rep = IP(src=WEB4, dst=C4, ttl=60, id=900 + seq) / ICMP(type=0, id=ident, seq=seq)
            req, rep = req / payload, rep / payload
        out.append((t + seq, bytes(eth(req))))
        out.append((t + seq + 0.021, bytes(eth(rep, False))))
    return out


def demo() -> list[Record]:
    """A realistic few minutes of one client: web over v4 and v6, DNS, pings, a refused port."""
    rng = random.Random(20240601)
    recs: list[Record] = []
    for k in range(4):
        t = BASE_TS + 3 + k * 25
        recs += _dns(rng, t, False, f"www{k}.example.com")
        recs += _tcp_conversation(rng, t + 0.05, IP(src=C4, dst=WEB4, id=1000 + 100 * k),
                                  IP(src=WEB4, dst=C4, ttl=55), 40000 + k, 443 if k % 2 else 80,
                                  replies=8 + 6 * k)
    recs += _dns(rng, BASE_TS + 60, True, "v6.example.com")
    recs += _tcp_conversation(rng, BASE_TS + 60.05, IPv6(src=C6, dst=WEB6, fl=0xABCDE),
                              IPv6(src=WEB6, dst=C6, hlim=57, fl=0x12345), 50000, 443, replies=20)
    recs += _tcp_conversation(rng, BASE_TS + 75, IP(src=C4, dst=WEB4, id=7000),
                              IP(src=WEB4, dst=C4, ttl=55), 40100, 8080, replies=0, reset=True)
    for k in range(6):
        recs += _dns(rng, BASE_TS + 80 + 7 * k, k % 2 == 1, f"svc{k}.example.net")
    recs += _pings(BASE_TS + 10, False, 5, 0x1234)
    recs += _pings(BASE_TS + 90, True, 5, 0x4321)
    recs.sort(key=lambda rec: rec[0])
    return recs


def vlan() -> list[Record]:
    """802.1Q, 802.1ad QinQ and the old 0x9100 outer tag, over IPv4 and IPv6."""
    v4 = IP(src=C4, dst=WEB4) / UDP(sport=5001, dport=5002) / b"tagged"
    v6 = IPv6(src=C6, dst=WEB6) / TCP(sport=3333, dport=4444, flags="S")
    frames = [
        Ether(src=CLIENT_MAC, dst=ROUTER_MAC) / Dot1Q(vlan=10) / v4,
        Ether(src=CLIENT_MAC, dst=ROUTER_MAC) / Dot1Q(vlan=20, prio=5) / v6,
        Ether(src=CLIENT_MAC, dst=ROUTER_MAC) / Dot1AD(vlan=100) / Dot1Q(vlan=30) / v4,
        Ether(src=CLIENT_MAC, dst=ROUTER_MAC, type=0x9100) / Dot1Q(vlan=200) / Dot1Q(vlan=40) / v6,
        Ether(src=CLIENT_MAC, dst=ROUTER_MAC) / Dot1Q(vlan=4094) / ARP(psrc=C4, pdst=WEB4),
    ]
    return [(BASE_TS + i, bytes(f)) for i, f in enumerate(frames)]


def ipv6_extensions() -> list[Record]:
    """Extension-header chains the decoder must walk to find the upper layer."""
    base = IPv6(src=C6, dst=WEB6)
    udp = UDP(sport=40001, dport=40002) / b"ext"
    frames = [
        base / IPv6ExtHdrHopByHop() / udp,
        base / IPv6ExtHdrRouting(addresses=[DNS6]) / TCP(sport=1, dport=2, flags="S"),
        base / IPv6ExtHdrDestOpt() / udp,
        base / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt() / TCP(sport=10, dport=20, flags="PA") / b"x",
        base / IPv6ExtHdrFragment(id=0xDEADBEEF, offset=0, m=1, nh=17) / udp,
        base / IPv6ExtHdrFragment(id=0xDEADBEEF, offset=100, m=0, nh=17) / Raw(b"tail" * 4),
        base / AH(nh=58, payloadlen=4, spi=7, seq=1, icv=b"\0" * 12)
        / ICMPv6EchoRequest(id=1, seq=1),
        IPv6(src=C6, dst=WEB6, nh=50) / Raw(b"\0\0\0\x07" + b"\0" * 28),  # ESP: stop, no ports
        IPv6(src=C6, dst=WEB6, nh=0) / Raw(b"\x3b\0\0\0\0\0\0\0"),  # HBH then No Next Header
    ]
    return [(BASE_TS + i, bytes(eth(f))) for i, f in enumerate(frames)]


def ipv4_fragments() -> list[Record]:
    """A fragmented UDP datagram and a fragmented ping: only first fragments carry ports."""
    udp = IP(src=C4, dst=DNS4, id=4242) / UDP(sport=6000, dport=7000) / (b"u" * 3000)
    ping = IP(src=C4, dst=WEB4, id=4343) / ICMP(type=8, id=9, seq=1) / (b"p" * 2000)
    frags = fragment(udp, fragsize=1400) + fragment(ping, fragsize=1400)
    return [(BASE_TS + i * 0.001, bytes(eth(f))) for i, f in enumerate(frags)]


def malformed() -> list[Record]:
    """One packet per reason the decoder skips, plus well-formed controls at both ends."""
    good = eth(IP(src=C4, dst=WEB4) / UDP(sport=1, dport=2))
    ip_ok = bytes(IP(src=C4, dst=WEB4) / UDP(sport=1, dport=2))
    ether_v4 = bytes(Ether(src=CLIENT_MAC, dst=ROUTER_MAC, type=0x0800))
    ether_v6 = bytes(Ether(src=CLIENT_MAC, dst=ROUTER_MAC, type=0x86DD))
    bad_ihl = bytearray(ip_ok)
    bad_ihl[0] = 0x44  # IHL 4 < 5
    short_total = bytearray(ip_ok)
    short_total[2:4] = b"\x00\x10"  # total length 16 < header 20
    v6_in_v4 = bytes(IPv6(src=C6, dst=WEB6) / UDP())
    frames = [
        bytes(good),
        ether_v4[:10],  # too-short: Ethernet header cut
        ether_v4 + ip_ok[:12],  # too-short: IPv4 header cut
        ether_v4 + bytes(bad_ihl),  # bad-header-length
        ether_v4 + bytes(short_total),  # bad-header-length
        ether_v4 + v6_in_v4,  # bad-version: ethertype IPv4, version 6
        ether_v6 + bytes(IPv6(src=C6, dst=WEB6) / UDP())[:30],  # too-short: IPv6 header cut
        bytes(Ether(src=CLIENT_MAC, dst=ROUTER_MAC) / ARP(psrc=C4, pdst=WEB4)),  # non-ip
        bytes(Ether(src=CLIENT_MAC, dst=ROUTER_MAC, type=0x8847)) + b"\0\x01\x01\x40" + ip_ok,
        bytes(good),
    ]
    return [(BASE_TS + i, f) for i, f in enumerate(frames)]


def padded() -> list[Record]:
    """Short frames padded to Ethernet's 60-octet minimum: the padding is not IP."""
    frames = [
        eth(IP(src=C4, dst=WEB4) / TCP(sport=40000, dport=80, flags="A")),
        eth(IPv6(src=C6, dst=WEB6) / UDP(sport=1, dport=2)),
    ]
    return [(BASE_TS + i, bytes(f).ljust(60, b"\0")) for i, f in enumerate(frames)]


def transports() -> list[Record]:
    """SCTP and UDP-Lite carry ports too; GRE does not."""
    frames = [
        eth(IP(src=C4, dst=WEB4) / SCTP(sport=2905, dport=2906)),
        eth(IPv6(src=C6, dst=WEB6) / SCTP(sport=36412, dport=36412)),
        eth(IP(src=C4, dst=WEB4, proto=136) / UDP(sport=5004, dport=5005)),
        eth(IP(src=C4, dst=WEB4, proto=47) / Raw(b"\0\0\x08\0" + bytes(IP(src=C4, dst=DNS4)))),
    ]
    return [(BASE_TS + i, bytes(f)) for i, f in enumerate(frames)]


def _strip_ethernet(records: list[Record]) -> list[tuple[float, bytes, int]]:
    """(timestamp, IP packet, ethertype) for the IP frames of ``records``."""
    out = []
    for ts, frame in records:
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype in (0x0800, 0x86DD):
            out.append((ts, frame[14:], ethertype))
    return out


def linux_sll(records: list[Record]) -> list[Record]:
    out = []
    for ts, ip, ethertype in _strip_ethernet(records):
        # packet type 4 (outgoing), ARPHRD_ETHER, 6-byte address, protocol
        head = struct.pack(">HHH8sH", 4, 1, 6, bytes.fromhex("020000000001") + b"\0\0", ethertype)
        out.append((ts, head + ip))
    return out


def linux_sll2(records: list[Record]) -> list[Record]:
    out = []
    for ts, ip, ethertype in _strip_ethernet(records):
        head = struct.pack(">HHIHBB8s", ethertype, 0, 2, 1, 0, 6,
                           bytes.fromhex("020000000001") + b"\0\0")
        out.append((ts, head + ip))
    return out


def raw_ip(records: list[Record]) -> list[Record]:
    return [(ts, ip) for ts, ip, _ in _strip_ethernet(records)]


def loopback(records: list[Record], *, network_order: bool) -> list[Record]:
    """BSD null (little-endian here, as a Mac writes it: AF_INET6 = 30) or OpenBSD loop."""
    out = []
    for ts, ip, ethertype in _strip_ethernet(records):
        if network_order:
            head = struct.pack(">I", 2 if ethertype == 0x0800 else 24)
        else:
            head = struct.pack("<I", 2 if ethertype == 0x0800 else 30)
        out.append((ts, head + ip))
    return out


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "pcaps")
    out.mkdir(parents=True, exist_ok=True)
    base = demo()
    small = base[:60]
    files = {
        "demo.pcap": (write_pcap, base, LINKTYPE_ETHERNET),
        "demo.pcapng": (write_pcapng, base, LINKTYPE_ETHERNET),
        "vlan.pcap": (write_pcap, vlan(), LINKTYPE_ETHERNET),
        "ipv6-ext.pcap": (write_pcap, ipv6_extensions(), LINKTYPE_ETHERNET),
        "ipv4-frag.pcap": (write_pcap, ipv4_fragments(), LINKTYPE_ETHERNET),
        "malformed.pcap": (write_pcap, malformed(), LINKTYPE_ETHERNET),
        "padded.pcap": (write_pcap, padded(), LINKTYPE_ETHERNET),
        "transports.pcap": (write_pcap, transports(), LINKTYPE_ETHERNET),
        "linux-sll.pcap": (write_pcap, linux_sll(small), LINKTYPE_LINUX_SLL),
        "linux-sll2.pcap": (write_pcap, linux_sll2(small), LINKTYPE_LINUX_SLL2),
        "raw-ip.pcap": (write_pcap, raw_ip(small), LINKTYPE_RAW),
        "null-loopback.pcap": (write_pcap, loopback(small, network_order=False), LINKTYPE_NULL),
        "openbsd-loop.pcap": (write_pcap, loopback(small, network_order=True), LINKTYPE_LOOP),
    }
    for name, (writer, records, linktype) in files.items():
        count = writer(out / name, records, linktype)
        print(f"{out / name}: {count} packets")
    count = write_pcap(out / "snaplen64.pcap", base, LINKTYPE_ETHERNET, snaplen=64)
    print(f"{out / 'snaplen64.pcap'}: {count} packets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
