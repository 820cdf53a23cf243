"""Derived state of a workshop (contract section 4): pure, deterministic, incremental.

Everything here is a function of the merged document only: no clock, no CRDT map
iteration order, no float summation order, so every replica computes the same
result from the same state.
"""

from __future__ import annotations

from vmv_sync.derived.matrix import MatrixRow, compute_matrix_summary, matrix_summary
from vmv_sync.derived.progress import compute_participants_by_stage, participants_by_stage
from vmv_sync.derived.state import INPUT_ROOTS, DerivedState, DerivedTracker, compute_state
from vmv_sync.derived.values import (
    ValueStat,
    compute_value_stats,
    round_fraction,
    round_ratio,
    value_stats,
)
from vmv_sync.derived.votes import ELIGIBLE_ROLES, BallotTally, compute_tallies, tally_votes

__all__ = (
    "ValueStat",
    "value_stats",
    "compute_value_stats",
    "round_fraction",
    "round_ratio",
    "BallotTally",
    "ELIGIBLE_ROLES",
    "tally_votes",
    "compute_tallies",
    "participants_by_stage",
    "compute_participants_by_stage",
    "MatrixRow",
    "matrix_summary",
    "compute_matrix_summary",
    "DerivedState",
    "DerivedTracker",
    "compute_state",
    "INPUT_ROOTS",
)
