"""Run an Exporting Process against local UDP sockets and decode what arrives."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from probe.cache.records import RecordBatch
from probe.config.model import Config, Destination, ExportingProcess, Options
from probe.export import ExportingProcessRuntime, open_exporting_process
from tests.export.flows import SYS_INIT_US
from tests.export.wire import Decoder, Message


class UdpSink:
    def __init__(self, family: int = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = self.sock.getsockname()[0]

    def datagrams(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(65535))
            except TimeoutError:
                return out

    def messages(self) -> list[Message]:
        d = Decoder()
        return [d.decode(m) for m in self.datagrams()]

    def close(self) -> None:
        self.sock.close()


def destination(sink: UdpSink | None = None, *, version: int = 10, transport: str = "udp",
                port: int | None = None, **kw: object) -> Destination:
    addr = sink.address if sink else "127.0.0.1"
    p = sink.port if sink else port
    return Destination(name=f"{transport}://{addr}:{p}", transport=transport,  # type: ignore[arg-type]
                       ipfix_version=version, destination_address=addr,  # type: ignore[arg-type]
                       destination_port=p, **kw)  # type: ignore[arg-type]


def run(dests: Iterable[Destination], batches: Iterable[RecordBatch], *,
        mode: str = "parallel", config: Config | None = None, step_us: int = 0,
        queue_limit: int | None = None, options: tuple[Options, ...] = ()
        ) -> ExportingProcessRuntime:
    ep = ExportingProcess(name="ep", export_mode=mode, destinations=tuple(dests),  # type: ignore[arg-type]
                          options=options)
    cfg = config or Config(exporting_processes=(ep,))
    rt = open_exporting_process(ep, cfg, SYS_INIT_US)
    if queue_limit is not None:
        for d in rt.destinations:
            d.queue_limit = queue_limit
    now = SYS_INIT_US + 100_000_000
    for b in batches:
        rt.export(b, now)
        now += step_us
        rt.tick(now)
    rt.close(now)
    return rt
