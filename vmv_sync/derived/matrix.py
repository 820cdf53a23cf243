"""Matrix summary: per value, mean importance, mean practice and their gap.

A large positive gap marks a value people hold important but do not live, which
is what the workshop discusses next, so rows are sorted by gap descending.
Means and gaps are exact fractions rounded half up to 3 decimals at the end; the
gap is computed from the exact means, not from the rounded ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from vmv_sync.derived.values import catalogue_by_key, round_fraction
from vmv_sync.schema import (
    Rating,
    WorkshopData,
    choose_display_name,
    normalize_value_name,
    tidy_value_name,
)

__all__ = ("MatrixRow", "matrix_summary", "compute_matrix_summary")


@dataclass(frozen=True)
class MatrixRow:
    """One value's ratings summary (means and gap rounded to 3 decimals)."""

    name: str
    key: str
    importance: float
    practice: float
    gap: float
    ratings: int


def compute_matrix_summary(
    matrix: Mapping[str, Mapping[str, Rating]], catalogue: Sequence[str] = ()
) -> tuple[MatrixRow, ...]:
    """Matrix rows from the parsed ``matrix`` root.

    A participant who rated two spellings of one value counts once, with the rating
    stored under the smallest key (code-point order).
    """
    per_key: dict[str, list[Rating]] = {}
    spellings: dict[str, dict[str, int]] = {}
    for pid in sorted(matrix):
        chosen: dict[str, tuple[str, Rating]] = {}
        for raw in sorted(matrix[pid]):
            chosen.setdefault(normalize_value_name(raw), (raw, matrix[pid][raw]))
        for key, (raw, rating) in chosen.items():
            per_key.setdefault(key, []).append(rating)
            counts = spellings.setdefault(key, {})
            tidied = tidy_value_name(raw)
            counts[tidied] = counts.get(tidied, 0) + 1
    from_catalogue = catalogue_by_key(catalogue)
    rows: list[tuple[Fraction, MatrixRow]] = []
    for key, ratings in per_key.items():
        n = len(ratings)
        importance = Fraction(sum(r.importance for r in ratings), n)
        practice = Fraction(sum(r.practice for r in ratings), n)
        gap = importance - practice
        row = MatrixRow(
            name=choose_display_name(spellings[key], from_catalogue.get(key, ())),
            key=key,
            importance=round_fraction(importance, 3),
            practice=round_fraction(practice, 3),
            gap=round_fraction(gap, 3),
            ratings=n,
        )
        rows.append((gap, row))
    rows.sort(key=lambda item: (-item[0], item[1].key))
    return tuple(row for _, row in rows)


def matrix_summary(data: WorkshopData) -> tuple[MatrixRow, ...]:
    """Per-value rating means and gap, largest gap first, then by key."""
    return compute_matrix_summary(data.matrix, data.values)
