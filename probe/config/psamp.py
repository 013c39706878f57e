"""The ids PSAMP reports carry (RFC 5476, RFC 5477), numbered once from the config.

An exporting process's options records, the packet reports of an immediateCache and the
probe's operational state (``flowprobe stats --yang``) all name the same selectors, selection
sequences and observation points, so they are numbered here, in config order, and nowhere
else:

- ``selectorId``: the 1-based position of a selector among all selectors of all selection
  processes (unique in the probe, so in every observation domain);
- ``selectionSequenceId``: the 1-based position of an (observation point, selection process)
  pair among all observation points' selection processes: the path a packet takes to a cache
  (RFC 5476 §6.5.1), unique in the probe as well;
- ``observationPointId``: the 1-based position of an observation point (RFC 6728 leaves it
  to the device).
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.config.model import Config, ObservationPoint, SelectionProcess


def selector_ids(config: Config) -> dict[tuple[str, str], int]:
    """(selection process name, selector name) -> selectorId."""
    ids: dict[tuple[str, str], int] = {}
    for sp in config.selection_processes:
        for s in sp.selectors:
            ids[(sp.name, s.name)] = len(ids) + 1
    return ids


def observation_point_id(config: Config, op: ObservationPoint) -> int:
    return [o.name for o in config.observation_points].index(op.name) + 1


@dataclass(frozen=True, slots=True)
class SelectionSequence:
    """One path from an observation point through a selection process (RFC 5476 §6.5.1)."""

    sequence_id: int
    observation_point: ObservationPoint
    observation_point_id: int
    selection_process: SelectionProcess
    selector_ids: tuple[int, ...]  # of its selectors, in the order they run


def selection_sequences(config: Config) -> list[SelectionSequence]:
    sel = selector_ids(config)
    out: list[SelectionSequence] = []
    for i, op in enumerate(config.observation_points, start=1):
        for sp in op.selection_processes:
            out.append(SelectionSequence(len(out) + 1, op, i, sp,
                                         tuple(sel[(sp.name, s.name)] for s in sp.selectors)))
    return out
