"""A burst replay into an nfcapd with the kernel's default socket buffer (issue #13, case 5).

Unpaced, the 28k records of this trace leave in one burst at the end of the replay (every flow
has one packet and ends at the forced end) and nfcapd's 208 KB buffer, about 90 datagrams,
overflows: --rate 0 lost 470-880 of ~1000 datagrams per round on the development machine. The
default pacing of an offline replay must bring every record, and the replay must say that UDP
cannot confirm it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.export.peers import free_port, have, nfcapd, nfdump_info, udp_socket_state

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("nfcapd", "nfdump"), reason="needs nfcapd and nfdump")]

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 2


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools import tracegen

    path = tmp_path_factory.mktemp("pacing") / "burst.pcap"
    tracegen.generate(path, 40_000, seed=13, flow_packets=1.0)
    return path


def test_burst_into_a_default_socket_buffer_loses_nothing(burst: Path, tmp_path: Path) -> None:
    for i in range(ROUNDS):
        port = free_port()
        with nfcapd(tmp_path / f"round{i}", port, buffer=None) as store:
            r = subprocess.run([sys.executable, "-m", "probe", "replay", str(burst), "--export",
                                f"udp://127.0.0.1:{port}"], capture_output=True, text=True,
                               timeout=120, cwd=ROOT, check=False)
            assert r.returncode == 0, r.stderr
            state = udp_socket_state(port)
        line = r.stdout.splitlines()[-1]
        m = re.fullmatch(rf"export udp://127\.0\.0\.1:{port}: (\d+) records in (\d+) messages "
                         r"\(\d+ bytes\), paced at 5 MB/s; UDP cannot confirm delivery: compare "
                         r"with the collector's count", line)
        assert m, line
        records, messages = int(m[1]), int(m[2])
        assert records > 25_000 and messages > 900  # far more than the buffer holds
        assert state is not None and state[1] == 0, f"round {i}: nfcapd's socket dropped " \
                                                    f"{state and state[1]} datagrams"
        assert nfdump_info(store)["Flows"] == records, f"round {i}"
