"""Shared helpers for capture tests: write crafted frames to a file, decode a file whole."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from scapy.packet import Packet

from probe.capture import DecodeStats, PacketBatch, open_offline
from tools.make_pcaps import LINKTYPE_ETHERNET, write_pcap

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "pcaps"
TS = 1_700_000_000.0


def write_frames(
    path: Path, frames: list[Packet | bytes], linktype: int = LINKTYPE_ETHERNET,
    snaplen: int = 65535,
) -> Path:
    write_pcap(path, [(TS + i, bytes(f)) for i, f in enumerate(frames)], linktype, snaplen)
    return path


def read_all(path: Path | str, batch_size: int = 65536, *, tunnels: Iterable[str] = (),
             columns: frozenset[str] | None = None, widths: dict[str, int] | None = None,
             **kwargs: object) -> tuple[PacketBatch, DecodeStats]:
    """Every packet of a capture, decoded (packet sections as wide as ``widths`` says)."""
    with open_offline(str(path), **kwargs) as source:  # type: ignore[arg-type]
        source.tunnels = frozenset(tunnels)
        source.columns = columns
        source.widths = dict(widths or {})
        batch = PacketBatch.concat(list(source.batches(batch_size)))
        return batch, source.stats


def decode_frames(tmp_path: Path, frames: list[Packet | bytes], *, tunnels: Iterable[str] = (),
                  **kwargs: object) -> tuple[PacketBatch, DecodeStats]:
    return read_all(write_frames(tmp_path / "t.pcap", frames, **kwargs),  # type: ignore[arg-type]
                    tunnels=tunnels)


def addr(batch: PacketBatch, column: str, row: int = 0) -> bytes:
    return bytes(getattr(batch, column)[row])


def check_invariant(stats: DecodeStats) -> None:
    assert stats.packets_read == stats.packets_decoded + sum(stats.ignored.values())


SRC_MAC, DST_MAC = "02:11:22:33:44:55", "02:66:77:88:99:aa"


def ether(**fields: object) -> Packet:
    """An Ethernet header with both MACs set: scapy would otherwise ARP for the destination."""
    from scapy.layers.l2 import Ether

    return Ether(src=SRC_MAC, dst=DST_MAC, **fields)
