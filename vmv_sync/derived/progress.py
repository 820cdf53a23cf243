"""Participants by stage: how many participants are at each of the six stages."""

from __future__ import annotations

from collections.abc import Mapping

from vmv_sync.schema import STAGES, Progress, WorkshopData

__all__ = ("participants_by_stage", "compute_participants_by_stage")


def compute_participants_by_stage(progress: Mapping[str, Progress]) -> dict[str, int]:
    """Counts per stage from the parsed ``progress`` root, every stage present, in stage order."""
    counts = dict.fromkeys(STAGES, 0)
    for entry in progress.values():
        counts[entry.stage] += 1
    return counts


def participants_by_stage(data: WorkshopData) -> dict[str, int]:
    """The number of participants whose ``progress.stage`` is each stage (0 when none).

    Example:
        >>> participants_by_stage(WorkshopData())["vision"]
        0
    """
    return compute_participants_by_stage(data.progress)
