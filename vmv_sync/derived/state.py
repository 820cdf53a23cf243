"""Derived state: the four summaries of contract section 4, full and incremental.

``compute_state`` is the reference: read the document, compute everything.
``DerivedTracker`` keeps the same result up to date on a live document: deep
observers on the roots it reads mark changed entries dirty (one top-level key,
i.e. one participant or one ballot, at a time) and ``.state`` re-parses only those
entries and recomputes only the summaries that depend on them. The observers do
nothing but record keys, because an exception in a pycrdt observer surfaces in
whoever committed the transaction (the server's update path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map, Subscription

from vmv_sync.derived.matrix import MatrixRow, compute_matrix_summary
from vmv_sync.derived.progress import compute_participants_by_stage
from vmv_sync.derived.values import ValueStat, compute_value_stats
from vmv_sync.derived.votes import BallotTally, compute_tallies
from vmv_sync.schema import Roots, WorkshopData, bind_roots, read_workshop
from vmv_sync.schema.parse import (
    parse_ballot,
    parse_ballot_votes,
    parse_catalogue,
    parse_participant,
    parse_progress,
    parse_ratings,
    parse_selection,
)

__all__ = ("DerivedState", "DerivedTracker", "compute_state", "INPUT_ROOTS")

logger = logging.getLogger(__name__)

#: Keyed roots derived state reads, with the parser of one entry.
_KEYED_PARSERS: dict[str, Callable[[object], tuple[Any, int]]] = {
    "participants": parse_participant,
    "selections": parse_selection,
    "ballots": parse_ballot,
    "votes": parse_ballot_votes,
    "matrix": parse_ratings,
    "progress": parse_progress,
}

#: Every root derived state reads; ``skipped`` counts malformed entries of these only.
INPUT_ROOTS: tuple[str, ...] = (*_KEYED_PARSERS, "values")

#: Which summaries depend on which root.
_PARTS_OF_ROOT: dict[str, tuple[str, ...]] = {
    "participants": ("ballots",),
    "selections": ("values",),
    "values": ("values", "matrix"),
    "ballots": ("ballots",),
    "votes": ("ballots",),
    "matrix": ("matrix",),
    "progress": ("stages",),
}
_PARTS: tuple[str, ...] = ("values", "ballots", "stages", "matrix")


@dataclass(frozen=True)
class DerivedState:
    """Everything derived from one document state; equal on replicas with equal state."""

    values: tuple[ValueStat, ...]
    ballots: dict[str, BallotTally]
    stages: dict[str, int]
    matrix: tuple[MatrixRow, ...]
    skipped: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with a stable key order (shape in docs/derived-state.md)."""
        return {
            "values": [
                {
                    "name": v.name,
                    "key": v.key,
                    "count": v.count,
                    "percent": v.percent,
                    "participants": list(v.participants),
                }
                for v in self.values
            ],
            "ballots": {
                bid: {
                    "question": t.question,
                    "kind": t.kind,
                    "stage": t.stage,
                    "open": t.open,
                    "max_choices": t.max_choices,
                    "counts": [{"option": o, "count": c} for o, c in t.counts],
                    "voters": t.voters,
                    "eligible": t.eligible,
                    "turnout": t.turnout,
                    "winners": list(t.winners),
                    "ignored": t.ignored,
                }
                for bid, t in self.ballots.items()
            },
            "stages": dict(self.stages),
            "matrix": [
                {
                    "name": r.name,
                    "key": r.key,
                    "importance": r.importance,
                    "practice": r.practice,
                    "gap": r.gap,
                    "ratings": r.ratings,
                }
                for r in self.matrix
            ],
            "skipped": self.skipped,
        }


def _state_from_parts(parts: Mapping[str, Any], root_skips: int) -> DerivedState:
    tallies, ignored_votes = parts["ballots"]
    return DerivedState(
        values=parts["values"],
        ballots=tallies,
        stages=parts["stages"],
        matrix=parts["matrix"],
        skipped=root_skips + ignored_votes,
    )


def _compute_part(part: str, data: WorkshopData) -> Any:
    if part == "values":
        return compute_value_stats(data.selections, data.values)
    if part == "ballots":
        return compute_tallies(data.ballots, data.votes, data.participants)
    if part == "stages":
        return compute_participants_by_stage(data.progress)
    return compute_matrix_summary(data.matrix, data.values)


def compute_state(source: Doc[Any] | Roots | WorkshopData) -> DerivedState:
    """Compute all derived state from a document (or already-read workshop data).

    Example:
        >>> compute_state(Doc()).to_json()["stages"]["values-select"]
        0
    """
    data = source if isinstance(source, WorkshopData) else read_workshop(source)
    parts = {part: _compute_part(part, data) for part in _PARTS}
    root_skips = sum(data.skipped_by_root.get(root, 0) for root in INPUT_ROOTS)
    return _state_from_parts(parts, root_skips)


class DerivedTracker:
    """Keeps a document's :class:`DerivedState` current with minimal recomputation.

    Observers only mark what changed; the work happens lazily on :attr:`state`, so a
    batch of many updates costs one recomputation, of the touched entries only.
    Use it as a context manager or call :meth:`close` to stop observing.

    Example:
        >>> doc = Doc()
        >>> with DerivedTracker(doc) as tracker:
        ...     tracker.state.skipped
        0
    """

    def __init__(self, doc: Doc[Any] | Roots) -> None:
        # The Roots object must stay referenced: pycrdt drops a subscription along
        # with the wrapper object it was created on.
        self._roots = bind_roots(doc)
        by_name = self._roots.by_name()
        self._entries: dict[str, dict[str, tuple[Any, int]]] = {r: {} for r in _KEYED_PARSERS}
        self._dirty_keys: dict[str, set[str] | None] = {r: None for r in _KEYED_PARSERS}
        self._catalogue: tuple[tuple[str, ...], int] = ((), 0)
        self._catalogue_dirty = True
        self._dirty_parts: set[str] = set(_PARTS)
        self._parts: dict[str, Any] = {}
        self._state: DerivedState | None = None
        self._subscriptions: list[tuple[Map[Any] | Any, Subscription]] = []
        for name in INPUT_ROOTS:
            root = by_name[name]
            callback = self._observer(name)
            self._subscriptions.append((root, root.observe_deep(callback)))

    def _observer(self, name: str) -> Callable[[list[Any]], None]:
        def on_events(events: list[Any]) -> None:
            self._mark(name, events)

        return on_events

    def _mark(self, name: str, events: list[Any]) -> None:
        """Record which entries of root ``name`` changed; never raises on odd events."""
        self._dirty_parts.update(_PARTS_OF_ROOT[name])
        self._state = None
        if name == "values":
            self._catalogue_dirty = True
            return
        dirty = self._dirty_keys[name]
        if dirty is None:
            return
        for event in events:
            path = getattr(event, "path", None) or []
            if path and isinstance(path[0], str):
                dirty.add(path[0])
                continue
            keys = getattr(event, "keys", None)
            if path or not isinstance(keys, dict):
                self._dirty_keys[name] = None
                return
            dirty.update(k for k in keys if isinstance(k, str))

    def _refresh_root(self, name: str) -> dict[str, Any]:
        root: Map[Any] = getattr(self._roots, name)
        entries = self._entries[name]
        parse = _KEYED_PARSERS[name]
        dirty = self._dirty_keys[name]
        if dirty is None:
            entries.clear()
            dirty = set(root.keys())
        for key in dirty:
            if key in root:
                entries[key] = parse(root[key])
            else:
                entries.pop(key, None)
        self._dirty_keys[name] = set()
        return {k: entries[k][0] for k in sorted(entries) if entries[k][0] is not None}

    def _refresh(self) -> DerivedState:
        with self._roots.doc.transaction():
            if self._catalogue_dirty:
                self._catalogue = parse_catalogue(self._roots.values)
                self._catalogue_dirty = False
            needed = {r for r in _KEYED_PARSERS if self._dirty_keys[r] != set()}
            parsed = {r: self._refresh_root(r) for r in needed}
        if self._dirty_parts:
            data = self._data(parsed)
            for part in sorted(self._dirty_parts):
                self._parts[part] = _compute_part(part, data)
            self._dirty_parts.clear()
            logger.debug("derived state recomputed for roots %s", sorted(needed))
        root_skips = self._catalogue[1] + sum(
            n for entries in self._entries.values() for _, n in entries.values()
        )
        return _state_from_parts(self._parts, root_skips)

    def _data(self, parsed: dict[str, dict[str, Any]]) -> WorkshopData:
        """Plain data for the dirty parts, rebuilding only the roots they read."""

        def get(name: str) -> dict[str, Any]:
            if name not in parsed:
                entries = self._entries[name]
                parsed[name] = {
                    k: entries[k][0] for k in sorted(entries) if entries[k][0] is not None
                }
            return parsed[name]

        parts = self._dirty_parts
        return WorkshopData(
            participants=get("participants") if "ballots" in parts else {},
            selections=get("selections") if "values" in parts else {},
            values=self._catalogue[0],
            ballots=get("ballots") if "ballots" in parts else {},
            votes=get("votes") if "ballots" in parts else {},
            matrix=get("matrix") if "matrix" in parts else {},
            progress=get("progress") if "stages" in parts else {},
        )

    @property
    def state(self) -> DerivedState:
        """The current derived state, recomputing only what changed since the last read."""
        if self._state is None:
            self._state = self._refresh()
        return self._state

    def close(self) -> None:
        """Stop observing the document; idempotent."""
        for root, subscription in self._subscriptions:
            root.unobserve(subscription)
        self._subscriptions.clear()

    def __enter__(self) -> DerivedTracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
