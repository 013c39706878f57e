"""The control socket: a unix stream socket answering one JSON request per connection.

Protocol (version 1): the client sends one line ``{"command": "stats"}`` (some commands take
more members, e.g. ``{"command": "flows", "sort": "bytes", "limit": 20}``), the probe answers
one line of JSON and closes. Answers are ``{"ok": true, ...}`` or ``{"ok": false, "error":
"..."}``. Commands: ``stats`` (the statistics document, ``probe.service.stats``), ``ping``,
``flows``, ``expire-all`` and ``send-templates`` (``probe.service.commands``). The socket is
created mode 0660 so only the probe's user and group (and root) can ask.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from probe.errors import UserError

log = logging.getLogger(__name__)

MAX_REQUEST = 4096
TIMEOUT_S = 5.0
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def default_path() -> str:
    """/run/flowprobe/ for root (systemd's RuntimeDirectory), else the user's runtime dir."""
    if os.geteuid() == 0:
        return "/run/flowprobe/flowprobe.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "flowprobe.sock")
    return f"/tmp/flowprobe-{os.getuid()}.sock"


def _in_use(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1.0)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class ControlServer:
    """Serves ``handler`` on ``path`` from a daemon thread until ``close()``."""

    def __init__(self, path: str, handler: Handler, owner: tuple[int, int] | None = None) -> None:
        self.path = path
        self.handler = handler
        parent = Path(path).parent
        try:
            if not parent.exists():
                parent.mkdir(mode=0o755, parents=True)
                if owner is not None:  # the --user the probe switches to must remove it later
                    os.chown(parent, *owner)
            if os.path.exists(path) or os.path.islink(path):
                if _in_use(path):
                    raise UserError(f"--control-socket {path}: another probe is listening there")
                os.unlink(path)  # stale, left by a probe that was killed
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o117)
            try:
                self._sock.bind(path)
            finally:
                os.umask(old)
            if owner is not None:
                os.chown(path, *owner)
            self._sock.listen(8)
        except OSError as exc:
            raise UserError(f"--control-socket {path}: {exc.strerror or exc}") from None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(TIMEOUT_S)
                try:
                    conn.sendall(json.dumps(self._answer(conn)).encode() + b"\n")
                except OSError as exc:
                    log.debug("control socket: client went away: %s", exc)

    def _answer(self, conn: socket.socket) -> dict[str, Any]:
        data = b""
        try:
            while b"\n" not in data and len(data) < MAX_REQUEST:
                chunk = conn.recv(MAX_REQUEST)
                if not chunk:
                    break
                data += chunk
            request = json.loads(data.split(b"\n", 1)[0] or b"{}")
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except (OSError, ValueError) as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        try:
            return {"ok": True, **self.handler(request)}
        except ValueError as exc:  # the request's fault (an unknown command)
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a broken request must not take the probe down
            log.exception("control socket: %s request failed", request.get("command"))
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def request(path: str, command: str, timeout: float = TIMEOUT_S, **params: Any
            ) -> dict[str, Any]:
    """Ask the probe listening on ``path`` (``params``: the command's other members); a
    UserError when none answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except FileNotFoundError:
            raise UserError(f"no probe listening on {path} (no such socket)") from None
        except OSError as exc:
            raise UserError(f"no probe listening on {path} ({exc.strerror or exc})") from None
        s.sendall(json.dumps({"command": command, **params}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise UserError(f"{path}: control socket failed: {exc.strerror or exc}") from None
    finally:
        s.close()
    try:
        answer = json.loads(data)
    except ValueError:
        raise UserError(f"{path}: not a flowprobe control socket (unreadable answer)") from None
    if not answer.get("ok"):
        raise UserError(f"{path}: {answer.get('error', 'request failed')}")
    return answer
