"""``--user``: after the switch only CAP_NET_RAW and CAP_NET_ADMIN remain, so a reload can
still open captures while nothing else a root process could do is left."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from probe.errors import UserError
from probe.service.privileges import resolve

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import socket
from probe.service.privileges import drop, resolve
drop(resolve("nobody"))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(status["Uid"].split()[0], status["Gid"].split()[0], status["CapEff"].strip(),
      status["CapPrm"].strip())
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)  # what opening a capture needs
s.close()
try:
    open("/etc/shadow").close()
    print("shadow readable")
except PermissionError:
    print("shadow denied")
"""


def test_unknown_user_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--user no-such-user-fp: no such user"):
        resolve("no-such-user-fp")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch user")
def test_drop_keeps_only_the_capture_capabilities() -> None:
    nobody = pwd.getpwnam("nobody")
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids, shadow = out.stdout.splitlines()
    uid, gid, eff, prm = ids.split()
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert int(eff, 16) == int(prm, 16) == (1 << 12) | (1 << 13)  # CAP_NET_ADMIN, CAP_NET_RAW
    assert shadow == "shadow denied"
