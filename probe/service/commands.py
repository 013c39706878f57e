"""The control socket's commands on a metering pipeline, as ``softflowctl`` has them.

- ``flows`` (``sort``: bytes, packets, rate or age; ``limit``: how many, 0 or none for all):
  the flows cached now, ``probe.service.flows``;
- ``expire-all``: every cached flow ends now (flowEndReason 4, forced end) and goes to the
  exporting processes, partly filled messages included;
- ``send-templates``: every UDP destination sends its Templates again now;
- ``config``: the config the pipeline runs, in goflowd form (``probe.config.dump``), which
  ``flowprobe stats --yang`` puts the state into: a file may have changed since it loaded, and
  ``run -i`` or a replay have none;
- ``stats`` and ``ping`` (``probe.service.stats``).

The first three touch the flow table or the exporters, which belong to the thread that meters:
the request is handed to that thread (``Pipeline.on_meter_thread``) and this one waits for the
answer. The same commands serve ``flowprobe run`` (``Service``), its capture workers (the
supervisor asks each and adds up) and a replay given ``--control-socket`` (``ReplayControl``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from probe.pipeline import NotMetering, Pipeline
from probe.service import flows as fl
from probe.service import stats as st
from probe.service.control import ControlServer

PIPELINE_COMMANDS = ("flows", "expire-all", "send-templates", "config")
Snapshot = Callable[[], dict[str, Any]]


def _on_meter_thread(pipeline: Pipeline | None, fn: Callable[[Pipeline], Any]) -> Any:
    if pipeline is None:
        raise ValueError("the probe is not metering right now (starting or reloading); "
                         "ask again")
    try:
        return pipeline.on_meter_thread(lambda: fn(pipeline))
    except (NotMetering, TimeoutError) as exc:
        raise ValueError(str(exc)) from None


def flows_request(request: dict[str, Any]) -> tuple[str, int | None]:
    return fl.check_request(request.get("sort", "bytes"), request.get("limit"))


def answer(request: dict[str, Any], snapshot: Snapshot,
           pipeline: Callable[[], Pipeline | None]) -> dict[str, Any]:
    """One request to the process that meters ``pipeline()``."""
    command = request.get("command")
    if command == "flows":
        sort, limit = flows_request(request)
        now_us, records = _on_meter_thread(pipeline(), lambda p: p.cached_records())
        return {"flows": fl.listing(now_us, records, sort, limit)}
    if command == "expire-all":
        return {"expired": _on_meter_thread(pipeline(), lambda p: p.expire_all())}
    if command == "send-templates":
        return {"templates": _on_meter_thread(pipeline(), lambda p: p.send_templates())}
    if command == "config":
        return {"config": running_config(pipeline())}
    return st_answer(request, snapshot)


def running_config(pipeline: Pipeline | None) -> dict[str, Any]:
    """The pipeline's config as a file would hold it (its config never changes: no need to go
    to the metering thread)."""
    from probe.config.dump import goflowd_form

    if pipeline is None:
        raise ValueError("the probe is not metering right now (starting or reloading); "
                         "ask again")
    return goflowd_form(pipeline.config)


def st_answer(request: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    """``stats`` and ``ping``; an unknown command names every known one."""
    try:
        return st.answer(request, snapshot)
    except ValueError:
        known = ", ".join((*st.COMMANDS, *PIPELINE_COMMANDS))
        raise ValueError(f"unknown command {request.get('command')!r} (known: {known})"
                         ) from None


class ReplayControl:
    """The control socket of ``flowprobe replay --control-socket PATH``, so that ``flowprobe
    flows``, ``stats`` and ``top`` can watch a long replay.

    ``opened`` is the pipeline's ``on_open`` hook: the socket (and its thread) starts once the
    captures are open, after the reader process was forked (a fork copies no threads, so the
    capture forks only while this process has none). ``close`` removes it.
    """

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source  # what it meters, for the stats' header
        self.started = time.time()
        self.pipeline: Pipeline | None = None
        self._server: ControlServer | None = None

    def opened(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._server = ControlServer(self.path, self.handle)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def snapshot(self) -> dict[str, Any]:
        assert self.pipeline is not None
        return st.complete(st.pipeline_document(self.pipeline), config=self.source,
                           started=self.started, workers=1, reloads=0, reload_failures=0,
                           last_reload_error=None)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        return answer(request, self.snapshot, lambda: self.pipeline)
