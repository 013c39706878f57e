"""``flowprobe run``: wire the service pieces in the order privileges demand.

Order: load and validate the config (a bad one starts nothing), resolve ``--user``, check the
pid file, open the control socket and the metrics endpoint (a port below 1024 or /run need
root), write the pid file, then run; the captures open inside the pipeline and ``--user``
takes effect right after the last one is open. Everything is undone at exit, also on errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import ExitStack
from typing import Any

from probe.errors import UserError

log = logging.getLogger("probe.service")


def _control_path(args: argparse.Namespace) -> tuple[str | None, bool]:
    """(path or None, explicitly given)."""
    from probe.service.control import default_path

    if args.control_socket is None:
        return default_path(), False
    if args.control_socket.lower() == "none":
        return None, True
    return args.control_socket, True


def _start_control(stack: ExitStack, args: argparse.Namespace, handler: Any,
                   owner: tuple[int, int] | None) -> str | None:
    from probe.service.control import ControlServer

    path, explicit = _control_path(args)
    if path is None:
        return None
    try:
        server = ControlServer(path, handler, owner)
    except UserError as exc:
        if explicit:
            raise
        log.warning("%s; running without a control socket", exc.problems[0])
        return None
    stack.callback(server.close)
    log.info("control socket %s", path)
    return path


def serve(args: argparse.Namespace, built: Any = None) -> int:
    """Run ``args.config``, or ``built`` (the config ``run -i``'s flags stand for: no file,
    so SIGHUP has nothing to reload)."""
    import signal

    from probe.config import load
    from probe.config.pacing import loader, paced
    from probe.memory import starting_up
    from probe.service import privileges
    from probe.service.pidfile import PidFile

    # A SIGHUP before the service handles it (config still loading) must not kill the probe.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with starting_up():  # as replay starts: the config's objects live to the end
        config = paced(built if built is not None else load(args.config), args.rate)
    live = any(not op.offline_file for op in config.observation_points)
    account = privileges.resolve(args.user) if args.user else None
    owner = (account.uid, account.gid) if account else None
    pidfile = PidFile(args.pid_file) if args.pid_file else None
    if pidfile:
        pidfile.check()
    workers = args.workers if live else 1
    files = [d.name for ep in config.exporting_processes for d in ep.destinations
             if d.transport == "file"]
    if workers > 1 and files:
        raise UserError(f"--workers {workers}: destination {files[0]} is a fileWriter, and an "
                        "IPFIX File takes one writer (each worker is its own session); run one "
                        "worker, or export over UDP or TCP")
    if args.workers > 1 and not live:
        log.warning("--workers %d: offline observation points are read by one process",
                    args.workers)

    with ExitStack() as stack:
        if workers > 1:
            from probe.service.workers import Supervisor

            svc: Any = Supervisor(args, config, workers, account)
            svc.start()
            stack.callback(svc.kill)
        else:
            from probe.service.runner import Service

            # An offline run answers on a control socket only when given one, opened once
            # its capture is (after the reader process is forked: a fork copies no threads).
            path, explicit = _control_path(args)
            offline_control = not live and explicit and path is not None

            def captures_open() -> None:
                if offline_control:
                    _start_control(stack, args, svc.handle, owner)
                if account:
                    privileges.drop(account)

            progress = None
            if not live and sys.stderr.isatty():  # piped: no progress line
                from probe.output import ProgressLine

                progress = ProgressLine(sys.stderr)
            svc = Service(args.config, config, batch_size=args.batch_size,
                          buffer_size=args.buffer_size, load=loader(args.rate),
                          on_capture_open=captures_open if account or offline_control else None,
                          progress=progress)
        if live:
            _start_control(stack, args, svc.handle, owner)
        if args.metrics_port:
            from probe.service.metrics import serve as serve_metrics

            server = serve_metrics(svc.snapshot, args.metrics_port, args.metrics_address)
            stack.callback(server.shutdown)
            log.info("metrics on http://%s:%d/metrics", args.metrics_address, args.metrics_port)
        if pidfile:
            pidfile.write()
            stack.callback(pidfile.remove)
        status = svc.run()
        if not live and svc.last_stats is not None:  # offline runs keep their summary
            from probe.output import print_exports, print_summary

            print_summary(svc.last_stats, sys.stderr)
            print_exports(svc.config, svc.snapshot().get("exporting_processes", {}),
                          sys.stderr)
        return status
