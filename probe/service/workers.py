"""``--workers N``: N capture processes share each interface through PACKET_FANOUT hash.

The kernel hashes every packet's addresses, protocol and ports (the same hash for both
directions), so all packets of a flow reach the same worker, whose cache meters the whole flow.
Each worker is a full ``Service`` with its own caches and exporting processes: to a collector
each is a separate transport session (its own UDP source port or TCP connection) with its own
sequence numbers per observation domain, which RFC 7011 §10.3.2 allows. The observation domain
stays the configured one. Fragments are hashed on addresses and protocol only, so a fragmented
flow may be split across workers: the per-5-tuple totals stay exact.

The supervisor (the process systemd sees) validates reloads once, then passes SIGHUP on;
SIGTERM/SIGINT go to every worker; ``flowprobe stats`` gets the sum over the workers, each asked
over a private control socket.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection  # join() imports it lazily, maybe after --user
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Any

from probe.config import model
from probe.errors import UserError
from probe.service import stats as st
from probe.service.privileges import Account

log = logging.getLogger(__name__)

_PACKET_FANOUT_HASH = 0


def _exit_with_supervisor() -> None:
    """SIGTERM (export everything, exit) if the supervisor dies: no orphan keeps capturing."""
    import ctypes
    import ctypes.util

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() == 1:  # the supervisor died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(index: int, args: argparse.Namespace, config: model.Config, group: int,
            socket_path: str, account: Account | None) -> None:
    """A worker process: its own capture (joined to the fanout group), caches and exporters."""
    from probe.config.pacing import loader
    from probe.service import logsetup, privileges
    from probe.service.control import ControlServer
    from probe.service.runner import Service

    logsetup.configure(args.log_level, prefix=f"worker {index}: ")
    _exit_with_supervisor()

    def drop() -> None:
        privileges.drop(account)
        _exit_with_supervisor()  # a change of user clears the parent-death signal

    svc = Service(args.config, config, batch_size=args.batch_size, buffer_size=args.buffer_size,
                  fanout=(group, _PACKET_FANOUT_HASH),
                  on_capture_open=drop if account else None,
                  load=loader(getattr(args, "rate", None)))
    owner = (account.uid, account.gid) if account else None
    status = 1
    try:
        server = ControlServer(socket_path, svc.handle, owner)
        try:
            status = svc.run()
        finally:
            server.close()
    except UserError as exc:
        for line in exc.problems:
            log.error("%s", line)
        status = exc.exit_status
    except Exception:
        log.exception("failed")
    os._exit(status)


class Supervisor:
    def __init__(self, args: argparse.Namespace, config: model.Config, n: int,
                 account: Account | None) -> None:
        self.args = args
        self.config = config
        self.n = n
        self.account = account
        self.started = time.time()
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload_error: str | None = None
        self.last_stats = None
        self._dir = tempfile.mkdtemp(prefix="flowprobe-workers-")
        self._procs: list[Any] = []
        self._stopping = threading.Event()
        self._reloading = threading.Lock()

    def _socket(self, i: int) -> str:
        return os.path.join(self._dir, f"w{i}.sock")

    def start(self) -> None:
        if self.account:
            os.chown(self._dir, self.account.uid, self.account.gid)
        ctx = multiprocessing.get_context("fork")  # before any thread of ours starts
        group = os.getpid() & 0xFFFF
        for i in range(self.n):
            p = ctx.Process(target=_worker, name=f"flowprobe-worker-{i}",
                            args=(i, self.args, self.config, group, self._socket(i),
                                  self.account))
            p.start()
            self._procs.append(p)
        log.info("%d capture workers in fanout group %d (hash)", self.n, group)

    def _signal_all(self, sig: int) -> None:
        for p in self._procs:
            if p.pid and p.is_alive():
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    pass  # exited meanwhile
                except PermissionError as exc:
                    log.error("cannot signal %s: %s", p.name, exc)

    def _on_stop(self, signum: int, _frame: Any) -> None:
        log.info("%s: stopping the workers", signal.Signals(signum).name)
        self._stopping.set()
        self._signal_all(signal.SIGTERM)

    def _on_hup(self, *_: Any) -> None:
        threading.Thread(target=self.reload, name="reload", daemon=True).start()

    def reload(self) -> bool:
        """Validate once here; the workers reload (and validate again) on SIGHUP."""
        if self.args.config is None:
            log.warning("reload: the config comes from the command line, not a file; "
                        "SIGHUP ignored")
            return False
        if not self._reloading.acquire(blocking=False):
            return False
        try:
            from probe.config import load

            try:
                load(self.args.config)
            except UserError as exc:
                self.reload_failures += 1
                self.last_reload_error = "; ".join(exc.problems)
                log.error("reload: %s; keeping the running config", self.last_reload_error)
                return False
            self.reloads += 1
            self._signal_all(signal.SIGHUP)
            return True
        finally:
            self._reloading.release()

    def run(self) -> int:
        old = {s: signal.signal(s, self._on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        if self.account:  # the workers drop on their own once their captures are open
            from probe.service import privileges

            privileges.drop(self.account, (privileges.CAP_KILL,))
        try:
            status = 0
            while any(p.is_alive() for p in self._procs):
                for p in self._procs:
                    p.join(timeout=0.2)
                    if p.exitcode not in (None, 0) and not self._stopping.is_set():
                        log.error("%s exited with status %s; stopping the others", p.name,
                                  p.exitcode)
                        status = p.exitcode if p.exitcode > 0 else 1
                        self._stopping.set()
                        self._signal_all(signal.SIGTERM)
            codes = [p.exitcode for p in self._procs]
            return status or next((c for c in codes if c), 0)
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def kill(self) -> None:
        """Exit path: no worker outlives the supervisor."""
        self._signal_all(signal.SIGTERM)
        for p in self._procs:
            p.join(timeout=15)
            if p.is_alive():
                p.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def snapshot(self) -> dict[str, Any]:
        from probe.service.control import request

        doc: dict[str, Any] = {}
        for i in range(self.n):
            try:
                part = request(self._socket(i), "stats")["stats"]
            except UserError:
                continue  # starting or gone: its counters are missing from this answer
            part.pop("service", None)
            doc = st.merge(doc, part) if doc else part
        return st.complete(doc, config=self.args.config or st.COMMAND_LINE,
                           started=self.started, workers=self.n,
                           reloads=self.reloads, reload_failures=self.reload_failures,
                           last_reload_error=self.last_reload_error)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """``stats`` adds up the workers' counters; the commands on the flows go to every
        worker, and their answers are put together."""
        from probe.service import commands
        from probe.service import flows as fl

        command = request.get("command")
        if command not in commands.PIPELINE_COMMANDS:
            return commands.st_answer(request, self.snapshot)
        sort, limit = commands.flows_request(request) if command == "flows" else ("", None)
        answers = self._ask_workers(request)
        if command == "config":  # every worker runs the one config
            return answers[0]
        if command == "flows":
            return {"flows": fl.merge((a["flows"] for a in answers), sort, limit)}
        if command == "expire-all":
            return {"expired": sum(a["expired"] for a in answers)}
        return {"templates": {f"{ep} (worker {i})": dests for i, a in enumerate(answers)
                              for ep, dests in a["templates"].items()}}

    def _ask_workers(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        from probe.service.control import request

        params = {k: v for k, v in req.items() if k != "command"}
        try:
            return [request(self._socket(i), req["command"], **params) for i in range(self.n)]
        except UserError as exc:  # a worker starting, reloading or gone
            raise ValueError("; ".join(exc.problems)) from None
