"""SIGTERM's handler runs on the main thread, possibly while that thread is inside the service
loop holding the service lock: stop() must get through, or the probe hangs until SIGKILL."""

from __future__ import annotations

import threading

from probe.config.defaults import default_config
from probe.service.runner import Service


def test_stop_from_a_handler_while_the_loop_holds_the_lock() -> None:
    svc = Service("unused.json", default_config())
    done = threading.Event()

    def handler_on_main_thread() -> None:
        with svc._lock:  # what _loop holds when the signal arrives
            svc.stop()  # what the SIGTERM handler calls, on the same thread
        done.set()

    t = threading.Thread(target=handler_on_main_thread, daemon=True)
    t.start()
    t.join(timeout=5)
    assert done.is_set(), "stop() blocked on the lock its own thread holds"
    assert svc._stopping
