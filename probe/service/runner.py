"""``flowprobe run`` as a long-running service: signals, reload, statistics.

Signals:

- SIGTERM / SIGINT: stop reading (after draining what the kernel already captured), expire every
  cached flow (flowEndReason 4, forced end), send everything to the collectors, exit 0.
- SIGHUP: reload. The config file is read and validated in a background thread while the old
  pipeline keeps metering. A bad file changes nothing: one error line says why. A good one
  stops the old pipeline exactly as SIGTERM would (its flows end as forced ends and reach the
  old exporting processes, which then close), then the new pipeline opens its captures and
  exporters. Counters in ``flowprobe stats`` carry on across reloads (totals since start). If
  the new pipeline cannot start (an interface vanished), the old config is started again.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from probe.config import model
from probe.errors import UserError
from probe.output import ProgressLine
from probe.service import stats as st

log = logging.getLogger(__name__)

_GAUGES = {"active", "queued", "connected"}


def _retired(doc: dict[str, Any]) -> dict[str, Any]:
    """A finished pipeline's counters, with gauges at zero so totals add up after a reload."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out[k] = _retired(v)
        elif isinstance(v, list):
            out[k] = [_retired(x) if isinstance(x, dict) else x for x in v]
        else:
            out[k] = 0 if k in _GAUGES else v
    return out


class Service:
    def __init__(self, config_path: str | None, config: model.Config, *,
                 batch_size: int | None = None, buffer_size: int | None = None,
                 fanout: tuple[int, int] | None = None,
                 load: Callable[[str], model.Config] | None = None,
                 on_capture_open: Callable[[], None] | None = None,
                 progress: ProgressLine | None = None) -> None:
        self.config_path = config_path
        self.config = config
        self.batch_size = batch_size
        self.buffer_size = buffer_size
        self.fanout = fanout
        self._load = load or _load_config
        self._on_capture_open = on_capture_open
        self._progress = progress  # an offline run's progress line on a terminal
        # Re-entrant: SIGTERM's handler calls stop() on the main thread, which may be inside
        # _loop holding this lock; a plain Lock deadlocked the service there.
        self._lock = threading.RLock()
        self._pipeline: Any = None
        self._pending: model.Config | None = None
        self._stopping = False
        self._reloading = threading.Lock()
        self._history: dict[str, Any] = {}
        self.started = time.time()
        self.reloads = 0
        self._switching = False  # a reload's pipeline is starting
        self.reload_failures = 0
        self.last_reload_error: str | None = None
        self.last_stats: Any = None  # PipelineStats of the last pipeline that finished

    # ------------------------------------------------------------ control
    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            pipeline = self._pipeline
        if pipeline is not None:
            pipeline.stop()

    def request_reload(self) -> None:
        """SIGHUP: validate the file off the metering thread; one reload at a time."""
        threading.Thread(target=self.reload, name="reload", daemon=True).start()

    def reload(self) -> bool:
        """Validate the config file; if good, switch to it. False (and logged) when bad."""
        if self.config_path is None:
            log.warning("reload: the config comes from the command line, not a file; "
                        "SIGHUP ignored")
            return False
        if not self._reloading.acquire(blocking=False):
            log.warning("reload: already reloading; SIGHUP ignored")
            return False
        try:
            log.info("reload: reading %s", self.config_path)
            try:
                new = self._load(self.config_path)
            except UserError as exc:
                self.reload_failures += 1
                self.last_reload_error = "; ".join(exc.problems)
                log.error("reload: %s; keeping the running config", self.last_reload_error)
                return False
            with self._lock:
                if self._stopping:
                    return False
                self._pending = new
                pipeline = self._pipeline
            if pipeline is not None:
                pipeline.stop()
            return True
        finally:
            self._reloading.release()

    def _signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, lambda signum, _f: self._on_stop(signum))
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        return old

    def _on_stop(self, signum: int) -> None:
        log.info("%s: expiring every flow and exporting it", signal.Signals(signum).name)
        self.stop()

    # ------------------------------------------------------------ running
    def _pipeline_for(self, config: model.Config) -> Any:
        from probe.pipeline import Pipeline

        kwargs: dict[str, Any] = {}
        if self.batch_size:
            kwargs["batch_size"] = self.batch_size
        return Pipeline(config, buffer_size=self.buffer_size, fanout=self.fanout,
                        on_open=self._captures_open, on_batch=self._progress, **kwargs)

    def _captures_open(self) -> None:
        """Every capture of the current pipeline is open: drop privileges (once), and a
        reload has now succeeded."""
        if self._on_capture_open is not None:
            hook, self._on_capture_open = self._on_capture_open, None
            hook()
        if self._switching:
            self._switching = False
            self.reloads += 1
            log.info("reload: the new config runs")

    def run(self) -> int:
        """Meter until stopped; returns the exit status."""
        restore = self._signals()
        try:
            return self._loop()
        finally:
            for sig, old in restore.items():
                signal.signal(sig, old)

    def _loop(self) -> int:
        config = self.config
        fallback: model.Config | None = None
        while True:
            pipeline = self._pipeline_for(config)
            with self._lock:
                self._pipeline = pipeline
                # a SIGTERM, or a reload validated while no pipeline ran (during a switch)
                stop_now = self._stopping or self._pending is not None
            if stop_now:
                pipeline.stop()
            try:
                self.last_stats = pipeline.run(handle_signals=False)
            except UserError as exc:
                if self._progress is not None:
                    self._progress.clear()
                with self._lock:
                    self._pipeline = None
                if fallback is None:
                    raise
                log.error("reload: the new config cannot start: %s; starting the previous one "
                          "again", "; ".join(exc.problems))
                self.reload_failures += 1
                self.last_reload_error = "; ".join(exc.problems)
                self._switching = False
                config, fallback = fallback, None
                continue
            if self._progress is not None:
                self._progress.clear()
            final = _retired(st.pipeline_document(pipeline))
            with self._lock:
                self._history = st.merge(self._history, final) if self._history else final
                self._pipeline = None
                pending, self._pending = self._pending, None
                stopping = self._stopping
            t = st.totals(final)
            log.info("pipeline stopped: %d packets received, %d dropped by libpcap, %d decoded, "
                     "%d flows expired, %d records exported", t["received"], t["dropped"],
                     t["decoded"], t["flows_expired"], t["records_exported"])
            if stopping or pending is None:
                return 0
            self._switching = True
            fallback, config = config, pending
            self.config = config
            log.info("reload: old flows exported; starting the new config")

    # ------------------------------------------------------------ statistics
    def snapshot(self) -> dict[str, Any]:
        """Totals since start: retired pipelines plus the running one."""
        with self._lock:
            pipeline = self._pipeline
            doc = dict(self._history)
        if pipeline is not None:
            live = st.pipeline_document(pipeline)
            doc = st.merge(doc, live) if doc else live
        return st.complete(doc, config=self.config_path or st.COMMAND_LINE,
                           started=self.started,
                           workers=1, reloads=self.reloads,
                           reload_failures=self.reload_failures,
                           last_reload_error=self.last_reload_error)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Control-socket commands (``probe.service.commands``)."""
        from probe.service.commands import answer

        with self._lock:
            pipeline = self._pipeline
        return answer(request, self.snapshot, lambda: pipeline)


def _load_config(path: str) -> model.Config:
    from probe.config import load

    return load(path)
