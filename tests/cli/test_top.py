"""``flowprobe top`` driven in tmux as a person would: typed at a shell prompt in an 80x24
terminal, attached to a running replay (``--control-socket``), then ``p``, ``r`` and ``q``.

The replayed trace has two big flows among many small ones, from the first packet on: A sends
the most bytes (large segments), B the most packets (small datagrams). So whatever moment the
screen is read, A heads the list by bytes and B by packets.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import dpkt
import pytest

from tests.helpers import wait_for_socket

ROOT = Path(__file__).resolve().parents[2]
A = ("10.1.0.1", 5001, "10.1.0.2", 80)  # most bytes: TCP, 1400-octet payloads
B = ("10.2.0.3", 5353, "10.2.0.4", 53)  # most packets: UDP, 20-octet payloads
PACKETS = 150_000

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


def _frame(src: str, sport: int, dst: str, dport: int, payload: bytes, tcp: bool) -> bytes:
    l4 = (dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_ACK, data=payload) if tcp
          else dpkt.udp.UDP(sport=sport, dport=dport, data=payload))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), ttl=64,
                    p=dpkt.ip.IP_PROTO_TCP if tcp else dpkt.ip.IP_PROTO_UDP, data=l4)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def write_trace(path: Path) -> None:
    """Per 10 packets: 2 of A, 5 of B, 3 of small flows (a new one every 3 packets)."""
    a = _frame(*A, b"a" * 1400, tcp=True)
    b = _frame(*B, b"b" * 20, tcp=False)
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f)
        t = 1_700_000_000.0
        for i in range(PACKETS):
            slot = i % 10
            if slot < 2:
                frame = a
            elif slot < 7:
                frame = b
            else:
                n = i // 10
                frame = _frame(f"10.3.{n >> 8 & 255}.{n & 255}", 40000 + slot, "10.4.0.1", 443,
                               b"m" * 100, tcp=True)
            w.writepkt(frame, t)
            t += 0.001


class Tmux:
    """A terminal of its own (a private tmux server), 80x24, running a shell."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name]
        subprocess.run([*self.base, "kill-server"], capture_output=True)
        subprocess.run([*self.base, "-f", "/dev/null", "new-session", "-d", "-s", "t",
                        "-x", "80", "-y", "24", "env", "PS1=$ ", "bash", "--norc",
                        "--noprofile"], check=True)

    def type(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "t", *keys], check=True)

    def screen(self) -> list[str]:
        out = subprocess.run([*self.base, "capture-pane", "-p", "-t", "t"], check=True,
                             capture_output=True, text=True).stdout
        return out.splitlines()

    def wait_for(self, ok: object, what: str, timeout: float = 20) -> tuple[list[str], float]:
        """The screen once ``ok(screen)`` holds, and how long that took."""
        start = time.monotonic()
        while True:
            lines = self.screen()
            if ok(lines):  # type: ignore[operator]
                return lines, time.monotonic() - start
            assert time.monotonic() - start < timeout, f"no {what}:\n" + "\n".join(lines)
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def _rows(lines: list[str]) -> list[list[str]]:
    """The flow rows under the column heads."""
    head = next(i for i, ln in enumerate(lines) if ln.startswith("source"))
    return [ln.split() for ln in lines[head + 1:] if ln.strip()]


def _number(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([kMGT]?)", text)
    assert m, text
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]


def _sorted_by(lines: list[str], column: int) -> bool:
    values = [_number(r[column]) for r in _rows(lines)]
    return len(values) > 5 and values == sorted(values, reverse=True)


def test_top_follows_a_running_replay(tmp_path: Path) -> None:
    trace = tmp_path / "two-big-flows.pcap"
    write_trace(trace)
    sock = tmp_path / "replay.sock"
    replay = subprocess.Popen([sys.executable, "-m", "probe", "replay", str(trace),
                               "--batch-size", "8", "--control-socket", str(sock),
                               "--export", "udp://127.0.0.1:9", "-q"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    term = Tmux(f"fp-top-{tmp_path.name}")
    try:
        wait_for_socket(replay, sock)
        term.type(f"cd {ROOT} && {sys.executable} -m probe top --control-socket {sock}",
                  "Enter")
        a, b = f"{A[0]}:{A[1]}", f"{B[0]}:{B[1]}"
        lines, took = term.wait_for(lambda s: any(ln.startswith("source") for ln in s)
                                    and _rows(s), "flow rows")
        print(f"\nfirst screen with flows {took:.2f} s after Enter")  # -s shows it
        assert lines[0].startswith("flowprobe top: pid ") and lines[0].endswith("sort: bytes")
        assert lines[1].startswith("packets: ") and lines[3].startswith("flows: ")
        assert "keys: b bytes  p packets  r rate  q quit" in lines
        assert _rows(lines)[0][:2] == [a, f"{A[2]}:{A[3]}"]  # the largest flow on top
        assert _sorted_by(lines, 4)  # bytes
        assert len(lines) <= 24 and all(len(ln) <= 80 for ln in lines)

        term.type("p")
        lines, _ = term.wait_for(lambda s: s[0].endswith("sort: packets") and _rows(s)
                                 and _rows(s)[0][0] == b, "sort by packets")
        assert _sorted_by(lines, 3)
        term.type("r")
        # the title changes on the key, the rows with the next answer: wait for both
        term.wait_for(lambda s: s[0].endswith("sort: rate") and _sorted_by(s, 5),
                      "sort by rate")
        assert replay.poll() is None, "the replay ended before top was done with it"

        replay.terminate()  # the replay stops (its flows are exported): top says so, stays
        assert replay.wait(timeout=60) == 0
        term.wait_for(lambda s: any(ln.startswith("asking again (q quits): no probe listening on")
                                    for ln in s), "the probe gone")
        term.type("q")
        term.wait_for(lambda s: any(ln == "$" for ln in s), "a prompt")
        term.type("echo top-exit=$?", "Enter")
        lines, _ = term.wait_for(lambda s: any("top-exit=" in ln for ln in s), "exit status")
        assert any(ln == "top-exit=0" for ln in lines), lines
        assert not any(ln.startswith("source") for ln in lines)  # the screen is given back
        assert "Traceback" not in "\n".join(lines)
    finally:
        term.close()
        if replay.poll() is None:
            replay.kill()
        replay.wait(timeout=60)


def test_top_without_a_probe_is_one_line_exit_2(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "probe", "top", "--control-socket",
                          str(tmp_path / "none.sock")], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr == f"no probe listening on {tmp_path / 'none.sock'} (no such socket)\n"
    assert out.stdout == ""  # the screen was never taken over


def test_long_endpoints_keep_their_port() -> None:
    from probe.cli.top import age_text, fit

    assert fit("[2001:db8:1::3371]:61796", 19) == "[2001:db8~71]:61796"
    assert fit("10.0.0.1:80", 19) == "10.0.0.1:80"
    assert [age_text(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]
