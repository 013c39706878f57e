"""The control socket protocol: one JSON request per connection, one JSON answer."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from probe.errors import UserError
from probe.service.control import ControlServer, request
from probe.service.stats import answer


def _server(path: Path, doc: dict | None = None) -> ControlServer:
    return ControlServer(str(path), lambda req: answer(req, lambda: doc or {"n": 1}))


def test_stats_round_trip_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    server = _server(path, {"caches": {"c": {"active": 7}}})
    try:
        assert request(str(path), "stats")["stats"] == {"caches": {"c": {"active": 7}}}
        assert request(str(path), "ping")["pid"] > 0
        assert path.stat().st_mode & 0o777 == 0o660
    finally:
        server.close()
    assert not path.exists()


def test_unknown_command_is_a_one_line_error(tmp_path: Path) -> None:
    server = _server(tmp_path / "ctl.sock")
    try:
        with pytest.raises(UserError) as exc:
            request(str(tmp_path / "ctl.sock"), "reboot")
        assert exc.value.problems == (f"{tmp_path / 'ctl.sock'}: unknown command 'reboot' "
                                      "(known: stats, ping)",)
    finally:
        server.close()


def test_garbage_request_gets_an_error_answer_and_server_survives(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    server = _server(path)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            s.sendall(b"not json\n")
            reply = json.loads(s.makefile().readline())
        assert reply["ok"] is False and reply["error"].startswith("bad request")
        assert request(str(path), "stats")["stats"] == {"n": 1}
    finally:
        server.close()


def test_no_probe_listening(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no probe listening on .*no such socket"):
        request(str(tmp_path / "missing.sock"), "stats")
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # a socket file nobody listens on (a killed probe's)
    with pytest.raises(UserError, match=r"no probe listening on .*refused"):
        request(str(stale), "stats")
    server = _server(stale)  # a new probe replaces the stale file
    try:
        assert request(str(stale), "stats")["ok"]
    finally:
        server.close()


def test_second_probe_on_the_same_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    server = _server(path)
    try:
        with pytest.raises(UserError, match="another probe is listening there"):
            _server(path)
        assert request(str(path), "stats")["ok"]  # the first one still answers
    finally:
        server.close()


def test_handler_failure_is_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"

    def broken(_req: dict) -> dict:
        raise RuntimeError("boom")

    server = ControlServer(str(path), broken)
    try:
        with pytest.raises(UserError, match="RuntimeError: boom"):
            request(str(path), "stats")
        with pytest.raises(UserError, match="RuntimeError: boom"):
            request(str(path), "stats")
    finally:
        server.close()
