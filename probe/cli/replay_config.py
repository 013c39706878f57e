"""The config a ``flowprobe replay`` meters: the built-in one or ``-c``'s, its observation points
reading the capture file, its caches exporting to ``--export`` or to the loopback's collector.

Shared by both forms of replay (``probe.cli.replay`` with ``--export``, ``probe.cli.replay_flows``
without); only the config model is imported at the top.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import replace

from probe.config import model
from probe.errors import UserError


def _check_pcap(path: str) -> None:
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a capture file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such capture file")


def parse_export_url(url: str) -> tuple[str, str, int]:
    """``udp://H:P`` / ``tcp://H:P`` (IPv6 host in brackets) -> (transport, host, port);
    ``file:PATH`` (an IPFIX File, RFC 5655) -> ("file", PATH, 0)."""
    if url.startswith("file:"):
        from probe.config.uris import file_path

        path, problem = file_path(url)
        if problem:
            raise UserError(f"--export {url}: {problem}")
        return "file", path, 0
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("udp", "tcp"):
        raise UserError(f"--export {url}: scheme must be udp://, tcp:// or file:")
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or not tail.startswith(":"):
            raise UserError(f"--export {url}: expected [IPv6]:PORT after {scheme}://")
        port_text = tail[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            raise UserError(f"--export {url}: missing :PORT")
    if not host:
        raise UserError(f"--export {url}: missing host")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UserError(f"--export {url}: port must be 1..65535")
    return scheme, host, int(port_text)


def _with_exporter(cfg: model.Cache, eps: tuple[model.ExportingProcess, ...] | None
                   ) -> model.Cache:
    return cfg if eps is None else replace(cfg, exporting_processes=eps)


def rewire(config: model.Config, pcap: str,
           eps: tuple[model.ExportingProcess, ...] | None) -> model.Config:
    """The config with every observation point reading ``pcap`` and, when ``eps`` is given,
    every cache exporting there instead of to its configured exporting processes."""
    caches = {c.name: _with_exporter(c, eps) for c in config.caches}
    sps = {sp.name: replace(sp, cache=caches.get(sp.cache.name) if sp.cache else None)
           for sp in config.selection_processes}
    ops = tuple(replace(
        op, offline_file=pcap, if_names=(),
        selection_processes=tuple(sps.get(sp.name, sp) for sp in op.selection_processes))
        for op in config.observation_points)
    return replace(
        config, observation_points=ops, selection_processes=tuple(sps.values()),
        caches=tuple(caches.values()),
        exporting_processes=(*config.exporting_processes, *(eps or ())))


def export_destination(url: str, version: int) -> tuple[str, str, int]:
    """``--export URL`` parsed, refused with the reason where ``--version`` cannot go to it."""
    export = parse_export_url(url)
    if export[0] == "tcp" and version == 9:
        from probe.config.semantic import V9_OVER_TCP

        raise UserError(f"--export {url} --version 9: {V9_OVER_TCP}; use --version 10 or udp://")
    if export[0] == "file" and version != 10:
        raise UserError(f"--export {url}: an IPFIX File (RFC 5655) holds IPFIX messages; "
                        f"--version {version} cannot be written to a file")
    return export


def build_config(args: argparse.Namespace) -> model.Config:
    """The config of a replay with ``--export`` (or none): the pcap feeds every observation
    point, and ``--export`` replaces the config's exporting processes."""
    version = args.version or 10
    export = export_destination(args.export, version) if args.export else None
    _check_pcap(args.pcap)
    if args.config is None:
        from probe.cli.meter_flags import meter_options
        from probe.config.defaults import default_config

        return default_config(args.pcap, export=export, version=version,
                              options=meter_options(args))
    from probe.config import load

    config = load(args.config, replay=True)
    eps = None
    if export is not None:
        from probe.config.defaults import default_config

        _check_version(args.config, config, version)
        eps = default_config(args.pcap, export=export, version=version).exporting_processes
    return rewire(config, args.pcap, eps)


def _check_version(path: str, config: model.Config, version: int) -> None:
    """A --version the config's layouts cannot be sent in is a UserError: NetFlow v5 has a
    fixed record, NetFlow v9 no enterprise-specific IEs."""
    if version not in (5, 9):
        return
    from probe.ie import BIFLOW_IES, V5_CARRIABLE

    def fits(f: model.CacheField) -> bool:
        if f.ie_name in BIFLOW_IES:  # a biflow goes as two one-way records
            return True
        return f.ie_name in V5_CARRIABLE if version == 5 else f.enterprise_number == 0

    problems = [f"{path}: cache {c.name!r}: NetFlow v{version} cannot carry "
                f"{', '.join(bad)}" for c in config.caches
                if (bad := [f.ie_name for f in c.layout.fields if not fits(f)])]
    if problems:
        raise UserError(*problems)


def _configured_version(config: model.Config) -> int | None:
    """The export version the config's destinations use, when they all agree."""
    versions = {d.ipfix_version for c in config.caches for ep in c.exporting_processes
                for d in ep.destinations}
    return versions.pop() if len(versions) == 1 else None


def loopback_config(args: argparse.Namespace
                    ) -> tuple[int, Callable[[model.ExportingProcess], model.Config]]:
    """The export version and the config of an in-process replay, given its exporting process.

    With ``-c`` the config's caches export to the in-process collector instead of to their
    configured destinations (``flowprobe run -c`` sends there), in the version those
    destinations use unless ``--version`` says otherwise.
    """
    _check_pcap(args.pcap)
    if args.config is None:
        from probe.cli.meter_flags import meter_options
        from probe.config.defaults import default_config

        version = args.version or 10
        base = default_config(args.pcap, version=version, options=meter_options(args))
    else:
        from probe.config import load

        base = load(args.config, replay=True)
        version = args.version or _configured_version(base) or 10
        _check_version(args.config, base, version)

    def make(ep: model.ExportingProcess) -> model.Config:
        cfg = rewire(base, args.pcap, (ep,))
        return replace(cfg, exporting_processes=(ep,))

    return version, make
