"""A real ``nats-server -js`` on 127.0.0.1 for the tests, and a consumer that reads a stream.

The server keeps its JetStream store in a directory of the test's, so stopping it and
starting it again on the same port (``restart``) keeps the stream, as a server restart does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.export.peers import free_port, wait_until


class NatsServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port(socket.SOCK_STREAM)
        self.store = workdir / "jetstream"
        self.log = workdir / "nats-server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        mark = self.log.read_bytes().count(b"Server is ready") if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p",
                                          str(self.port), "-sd", str(self.store)],
                                         stdout=log, stderr=log)
        wait_until(lambda: self.log.read_bytes().count(b"Server is ready") > mark,
                   "nats-server ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            self.proc = None


@contextlib.contextmanager
def nats_server(workdir: Path) -> Iterator[NatsServer]:
    server = NatsServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def read_stream(url: str, stream: str, subject: str = ">") -> list[tuple[str, bytes]]:
    """Every message of ``stream`` (on subjects matching ``subject``), in order, read by an
    ephemeral pull consumer: (subject, payload)."""

    async def main() -> list[tuple[str, bytes]]:
        import nats
        from nats.errors import TimeoutError as NatsTimeout

        nc = await nats.connect(url)
        js = nc.jetstream()
        info = await js.stream_info(stream)
        total = info.state.messages
        sub = await js.pull_subscribe(subject, stream=stream)
        out: list[tuple[str, bytes]] = []
        idle = 0
        while len(out) < total and idle < 3:
            try:
                msgs = await sub.fetch(1000, timeout=1)
            except NatsTimeout:
                idle += 1  # a filtered subject may match fewer than the stream holds
                continue
            for m in msgs:
                out.append((m.subject, m.data))
            await asyncio.gather(*(m.ack() for m in msgs))
        await nc.close()
        return out

    return asyncio.run(main())
