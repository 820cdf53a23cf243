"""The six workshop stages of contract section 3, in order.

The stage names are the wire format (they are stored in ``meta.stage``,
``messages[*].stage``, ``ballots[*].stage`` and ``progress[*]``); the 1-based stage
number is what the original workshop tool showed, so it is kept for display.
"""

from __future__ import annotations

import enum

from vmv_sync.errors import VmvSyncError

__all__ = ("Stage", "STAGES", "UnknownStage", "stage_number", "parse_stage", "is_stage")


class Stage(str, enum.Enum):
    """A workshop stage; the value is the name stored in the document."""

    VALUES_SELECT = "values-select"
    VALUES_COLLECTIVE = "values-collective"
    VALUES_MATRIX = "values-matrix"
    MISSION_DRAFT = "mission-draft"
    MISSION_FINAL = "mission-final"
    VISION = "vision"

    def __str__(self) -> str:
        return self.value

    @property
    def number(self) -> int:
        """The 1-based position of this stage."""
        return STAGES.index(self.value) + 1


#: The stage names in workshop order.
STAGES: tuple[str, ...] = tuple(stage.value for stage in Stage)


class UnknownStage(VmvSyncError, ValueError):
    """A string that is not one of the six stage names."""

    def __init__(self, stage: object) -> None:
        super().__init__(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
        self.stage = stage


def is_stage(value: object) -> bool:
    """Whether ``value`` is one of the six stage names (a ``Stage`` counts too)."""
    return isinstance(value, str) and value in STAGES


def parse_stage(stage: str | Stage) -> Stage:
    """Turn a stage name into a :class:`Stage`, raising :class:`UnknownStage` otherwise.

    Example:
        >>> parse_stage("vision") is Stage.VISION
        True
    """
    if not is_stage(stage):
        raise UnknownStage(stage)
    return Stage(stage)


def stage_number(stage: str | Stage) -> int:
    """The 1-based number of ``stage`` (``values-select`` is 1, ``vision`` is 6).

    Example:
        >>> stage_number("values-matrix")
        3
    """
    return parse_stage(stage).number
