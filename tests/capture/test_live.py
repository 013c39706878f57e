"""Live capture on the loopback interface: only datagrams this test sends, picked by BPF."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pcapy
import pytest

from probe import capture
from probe.capture import COLUMNS, open_live
from probe.config.model import ObservationPoint
from probe.errors import UserError
from tests.capture.helpers import PCAPS, REPO, read_all

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (CAP_NET_RAW)"),
]


def _free_udp_port() -> tuple[socket.socket, int]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    return sink, sink.getsockname()[1]


def test_live_loopback_capture_decodes_and_stops_on_close():
    sink, port = _free_udp_port()
    source = open_live("lo", bpf_filter=f"udp and dst port {port}", timeout_ms=50)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    seen, empties = [], 0
    deadline = time.monotonic() + 10
    for batch in source.batches():
        if len(batch) == 0:
            empties += 1
            if empties == 1:  # a quiet line surfaced as an empty batch: now send
                for size in range(5):
                    sender.sendto(b"x" * size, ("127.0.0.1", port))
        seen += list(zip(batch.dst_port.tolist(), batch.ip_len.tolist(), strict=True))
        if len(seen) >= 5 or time.monotonic() > deadline:
            break
    assert empties >= 1, "no empty batch while nothing was sent"
    assert seen == [(port, 28 + size) for size in range(5)]

    threading.Timer(0.2, source.close).start()
    started = time.monotonic()
    for _ in source.batches():
        assert time.monotonic() - started < 5, "batches() did not end after close()"
    assert source.capture_stats()["received"] >= 5
    assert source.stats.packets_decoded == 5
    sink.close()
    sender.close()


def test_missing_interface_is_a_user_error():
    message = r"^nosuchif0: cannot capture on interface: no such interface$"
    with pytest.raises(UserError, match=message):
        open_live("nosuchif0")


def test_fanout_group_shares_one_interface():
    """Two handles in one hash fanout group: each sees a share, together all, no repeats.

    Forty flows (one socket each) hash to both members unless something is wrong
    (chance 2**-39).
    """
    sink, port = _free_udp_port()
    group = 4000 + port % 1000
    handles = [
        open_live("lo", fanout=(group, pcapy.PACKET_FANOUT_HASH), bpf_filter=f"udp dst port {port}")
        for _ in range(2)
    ]
    for size in range(40):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"y" * size, ("127.0.0.1", port))
    lengths: list[list[int]] = [[], []]
    streams = [h.batches() for h in handles]
    deadline = time.monotonic() + 10
    while sum(map(len, lengths)) < 40 and time.monotonic() < deadline:
        for k, stream in enumerate(streams):
            lengths[k] += next(stream).ip_len.tolist()
    for handle in handles:
        handle.close()
    assert all(lengths), "one fanout member got nothing"
    assert sorted(lengths[0] + lengths[1]) == [28 + size for size in range(40)]
    sink.close()


@pytest.mark.parametrize(("direction", "expected"), [("ingress", 3), ("egress", 0)])
def test_direction_on_loopback(direction, expected):
    """On lo a datagram is captured once, as received: egress-only sees none of them."""
    sink, port = _free_udp_port()
    op = ObservationPoint(name="lo-op", observation_domain_id=1, if_names=("lo",),
                          direction=direction, bpf_filter=f"udp dst port {port}")
    source = capture.open(op)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(3):
            sender.sendto(b"z", ("127.0.0.1", port))
    seen = 0
    # Waiting for datagrams that come: a generous deadline; for none: a short window.
    deadline = time.monotonic() + (10.0 if expected else 1.0)
    for batch in source.batches():
        seen += len(batch)
        if seen >= 3 or time.monotonic() > deadline:
            break
    source.close()
    sink.close()
    assert seen == expected


_CAPTURE_IN_NS = """
import sys, time
import numpy as np
from probe.capture import COLUMNS, PacketBatch, open_live
source = open_live(sys.argv[1], timeout_ms=50)
print("ready", flush=True)
batches, deadline, quiet = [], time.monotonic() + 20, 0
for batch in source.batches():
    batches.append(batch)
    quiet = quiet + 1 if len(batch) == 0 else 0
    # Stop after 1 s without packets once the replay has started, or at the deadline.
    if (sum(map(len, batches)) and quiet >= 20) or time.monotonic() > deadline:
        break
source.close()
batch = PacketBatch.concat(batches)
np.savez(sys.argv[2], **{name: getattr(batch, name) for name in COLUMNS})
"""


@pytest.mark.skipif(not shutil.which("tcpreplay"), reason="tcpreplay not installed")
@pytest.mark.parametrize("name", ["demo.pcap", "vlan.pcap"])
def test_live_capture_of_a_replay_decodes_like_the_file(tmp_path, name):
    """tcpreplay a capture into a veth whose peer sits in a scratch namespace; capture there.

    vlan.pcap checks that the tags the kernel strips into metadata come back (libpcap
    re-inserts them), QinQ included.
    """
    tag = f"{os.getpid() % 100000}"
    ns, host_end, ns_end = f"fpcap{tag}", f"fpa{tag}", f"fpb{tag}"
    out = tmp_path / "live.npz"

    def run(*cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        run("ip", "link", "set", ns_end, "netns", ns)
        for args in (("sysctl", "-qw", f"net.ipv6.conf.{host_end}.disable_ipv6=1"),
                     ("ip", "link", "set", host_end, "up")):
            run(*args)
        for args in (("sysctl", "-qw", f"net.ipv6.conf.{ns_end}.disable_ipv6=1"),
                     ("ip", "link", "set", ns_end, "up")):
            run("ip", "netns", "exec", ns, *args)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        capture = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", _CAPTURE_IN_NS, ns_end, str(out)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        assert capture.stdout is not None and capture.stdout.readline().strip() == "ready"
        run("tcpreplay", "-q", "-i", host_end, "--topspeed", str(PCAPS / name))
        assert capture.wait(timeout=30) == 0
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    live = np.load(out)
    offline, _ = read_all(PCAPS / name)
    assert len(live["ts_us"]) == len(offline) > 0
    for name in COLUMNS:
        if name != "ts_us":  # replay time, not capture time
            np.testing.assert_array_equal(live[name], getattr(offline, name), err_msg=name)
