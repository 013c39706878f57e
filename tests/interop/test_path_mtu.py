"""maxPacketSize 0 (RFC 6728): the exporter sizes its messages by the path MTU, and follows it
when it shrinks. A veth pair into a namespace made here, with an MTU of its own, stands for the
path; a receiver in the namespace reports the datagrams it gets. Both are removed at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from probe.config.model import Config, Destination, ExportingProcess
from probe.export import open_exporting_process
from tests.export.flows import SYS_INIT_US, batch
from tools.bench_live import netns_problem, veth_into_netns

pytestmark = [pytest.mark.live, pytest.mark.interop]

RECEIVER = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 4739))
print("ready", flush=True)
while True:
    data = s.recv(65535)
    if data == b"stop":
        break
    print(len(data), flush=True)
"""


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def test_messages_follow_the_path_mtu(caplog: pytest.LogCaptureFixture) -> None:
    why = netns_problem()
    if why:
        pytest.skip(why)
    tag = f"m{os.getpid() % 10000}"
    net = 16 + os.getpid() % 200
    ours_ip, peer_ip = f"10.199.{net}.1", f"10.199.{net}.2"
    with veth_into_netns(tag) as (ns, ours, peer):
        _sh("ip", "addr", "add", f"{ours_ip}/30", "dev", ours)
        _sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{peer_ip}/30", "dev", peer)
        for args in (("ip", "link", "set", ours, "mtu", "1400"),
                     ("ip", "netns", "exec", ns, "ip", "link", "set", peer, "mtu", "1400")):
            _sh(*args)
        receiver = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", RECEIVER,
                                     peer_ip], stdout=subprocess.PIPE, text=True)
        try:
            assert receiver.stdout is not None and receiver.stdout.readline() == "ready\n"
            dest = Destination(name="path", transport="udp", destination_address=peer_ip,
                               destination_port=4739, max_packet_size=0)
            ep = ExportingProcess(name="ep", destinations=(dest,))
            rt = open_exporting_process(ep, Config(exporting_processes=(ep,)), SYS_INIT_US)
            (d,) = rt.destinations
            assert d.max_size == 1400 - 28
            now = SYS_INIT_US + 100_000_000
            rt.export(batch(400, 4), now)
            rt.tick(now + 2_000_000)
            _sh("ip", "link", "set", ours, "mtu", "1000")  # the path narrows
            rt.export(batch(400, 4, seed=2), now + 3_000_000)
            rt.close(now + 5_000_000)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # end the receiver
                s.sendto(b"stop", (peer_ip, 4739))
            out, _ = receiver.communicate(timeout=10)
        finally:
            receiver.kill()
    sizes = [int(line) for line in out.split()]
    wide = [n for n in sizes if n > 972]
    assert wide and max(wide) <= 1372 and max(wide) > 1300  # as the path allowed at first
    assert d.max_size == 1000 - 28
    after = sizes[max(i for i, n in enumerate(sizes) if n > 972) + 1:]
    assert after and max(after) <= 972 and max(after) > 900
    # the one message too wide for the narrower path failed, and went again in two: nothing
    # lost, the sequence numbers as if it had been sent so from the start
    assert d.counters.failures == 1 and d.counters.dropped == 0 and d.counters.records == 800
    assert caplog.text.count("the path MTU is now 1000: messages of at most 972 octets") == 1
