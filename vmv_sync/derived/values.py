"""Value statistics: how many participants selected each value (contract section 4).

Pure functions of plain workshop data. Names are grouped by
:func:`~vmv_sync.schema.normalize_value_name`; the shown spelling follows
:func:`~vmv_sync.schema.choose_display_name`. Percentages are computed exactly
(fractions of ints) and rounded half up, so every replica prints the same digits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from vmv_sync.schema import (
    WorkshopData,
    choose_display_name,
    normalize_value_name,
    tidy_value_name,
)

__all__ = ("ValueStat", "value_stats", "compute_value_stats", "round_ratio", "round_fraction")


def round_fraction(value: Fraction, places: int) -> float:
    """Round an exact fraction half up (away from zero for negatives) to ``places`` decimals.

    Exact arithmetic avoids float summation order and binary rounding surprises, so
    replicas and languages agree on the printed digits.

    Example:
        >>> round_fraction(Fraction(1, 8), 2)
        0.13
    """
    scale = 10**places
    scaled = abs(value) * scale
    rounded = math.floor(scaled + Fraction(1, 2))
    sign = -1 if value < 0 else 1
    return float(Fraction(sign * rounded, scale))


def round_ratio(numerator: int, denominator: int, places: int) -> float:
    """``numerator / denominator`` rounded half up; 0.0 when the denominator is 0."""
    if denominator == 0:
        return 0.0
    return round_fraction(Fraction(numerator, denominator), places)


@dataclass(frozen=True)
class ValueStat:
    """One value's selection count.

    Attributes:
        name: the display spelling.
        key: the comparison key (normalised name), unique within a result.
        count: participants who selected it.
        percent: ``count`` as a percentage of participants who selected anything (1 decimal).
        participants: their ids, sorted.
    """

    name: str
    key: str
    count: int
    percent: float
    participants: tuple[str, ...]


def catalogue_by_key(catalogue: Sequence[str]) -> dict[str, list[str]]:
    """Catalogue entries grouped by comparison key, each group in array order."""
    groups: dict[str, list[str]] = {}
    for entry in catalogue:
        groups.setdefault(normalize_value_name(entry), []).append(entry)
    return groups


def compute_value_stats(
    selections: Mapping[str, Mapping[str, float]], catalogue: Sequence[str]
) -> tuple[ValueStat, ...]:
    """Value stats from the ``selections`` and ``values`` roots (already parsed).

    Every catalogue value appears, with count 0 if nobody picked it; values picked
    but not in the catalogue appear too. Sorted by count descending, then key.
    """
    pids_by_key: dict[str, set[str]] = {}
    spellings: dict[str, dict[str, int]] = {}
    selectors = 0
    for pid in sorted(selections):
        names = selections[pid]
        if not names:
            continue
        selectors += 1
        used: dict[str, set[str]] = {}
        for raw in names:
            used.setdefault(normalize_value_name(raw), set()).add(tidy_value_name(raw))
        for key, tidied in used.items():
            pids_by_key.setdefault(key, set()).add(pid)
            counts = spellings.setdefault(key, {})
            for spelling in tidied:
                counts[spelling] = counts.get(spelling, 0) + 1
    from_catalogue = catalogue_by_key(catalogue)
    stats = []
    for key in set(pids_by_key) | set(from_catalogue):
        pids = tuple(sorted(pids_by_key.get(key, ())))
        stats.append(
            ValueStat(
                name=choose_display_name(spellings.get(key, {}), from_catalogue.get(key, ())),
                key=key,
                count=len(pids),
                percent=round_ratio(100 * len(pids), selectors, 1),
                participants=pids,
            )
        )
    stats.sort(key=lambda s: (-s.count, s.key))
    return tuple(stats)


def value_stats(data: WorkshopData) -> tuple[ValueStat, ...]:
    """Per-value selection counts of a workshop, most selected first.

    Example:
        >>> from vmv_sync.schema import WorkshopData
        >>> [s.name for s in value_stats(WorkshopData(values=("Trust",)))]
        ['Trust']
    """
    return compute_value_stats(data.selections, data.values)
