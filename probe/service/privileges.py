"""``--user NAME``: give up root once the captures are open.

The capture sockets stay open across setuid, so metering needs no privilege after that. A
reload (SIGHUP) may open captures again, so the probe keeps exactly CAP_NET_RAW and
CAP_NET_ADMIN (nothing else, not even in the bounding set's use: effective = permitted = those
two) through ``PR_SET_KEEPCAPS``. Under systemd prefer ``User=`` with ``AmbientCapabilities=``
(see ``contrib/flowprobe.service``); ``--user`` is for starting as root by other means.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import logging
import os
import pwd
from dataclasses import dataclass

from probe.errors import UserError

log = logging.getLogger(__name__)

CAP_KILL = 5
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
KEPT_CAPS = (CAP_NET_ADMIN, CAP_NET_RAW)
_PR_SET_KEEPCAPS = 8
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    uid: int
    gid: int


def resolve(name: str) -> Account:
    """The account ``--user`` names (checked before anything opens)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise UserError(f"--user {name}: no such user") from None
    if os.geteuid() != 0 and pw.pw_uid != os.geteuid():
        raise UserError(f"--user {name}: only root can switch user")
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _keep_only(caps: tuple[int, ...]) -> None:
    mask = sum(1 << c for c in caps)  # every kept capability is below 32
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
    if _libc().capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def drop(account: Account, caps: tuple[int, ...] = KEPT_CAPS) -> None:
    """setgid/initgroups/setuid to ``account``, keeping only ``caps`` (by default the capture
    capabilities; the workers' supervisor keeps CAP_KILL instead, to signal them)."""
    if os.geteuid() == account.uid and os.getegid() == account.gid:
        return
    libc = _libc()
    try:
        if libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS)")
        os.initgroups(account.name, account.gid)
        os.setgid(account.gid)
        os.setuid(account.uid)
        _keep_only(caps)
        libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0)
    except OSError as exc:
        raise UserError(f"--user {account.name}: cannot switch user: {exc}") from None
    groups = ",".join(sorted(_group_name(g) for g in os.getgroups()))
    names = {CAP_KILL: "CAP_KILL", CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_NET_RAW: "CAP_NET_RAW"}
    log.info("running as user %s (uid %d, groups %s), keeping %s", account.name, account.uid,
             groups or "-", " ".join(names.get(c, str(c)) for c in sorted(caps)) or "nothing")
