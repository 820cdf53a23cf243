"""A workshop's document from what a store keeps: now, or as of an earlier moment.

History rules (docs/operations.md): the store keeps a base state and the updates
after it with their commit times (``Store.history``). The state at ``T`` is the base
plus every update committed at or before ``T``; it is exact for ``T`` at or after the
first kept update, for any ``T`` when nothing was compacted yet, and for ``T`` not in
the past. Anything else predates the kept history: :class:`HistoryUnavailable`, with
the earliest moment that can be shown.

The server's history views (``/state?at=``, ``/export?at=``) and the CLI
(``export --at``, ``inspect``, ``compact``) share these; importing this module does
not import the server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pycrdt import Doc, merge_updates

from .errors import VmvSyncError
from .storage import StoreAdmin, StoredDoc, StoredUpdate

__all__ = (
    "HistoryUnavailable",
    "parse_at",
    "updates_at",
    "load_updates_at",
    "stored_parts",
    "doc_from_updates",
)


class HistoryUnavailable(VmvSyncError):
    """A moment older than the history the store still keeps (compacted away)."""

    def __init__(self, workshop_id: str, at: float, earliest: float | None) -> None:
        if earliest is None:
            detail = "only the current state is kept"
        else:
            detail = f"the earliest moment kept is {earliest:.3f}"
        super().__init__(
            f"workshop {workshop_id}: its history before {at:.3f} was compacted; {detail}"
        )
        self.workshop_id = workshop_id
        self.at = at
        self.earliest = earliest


def parse_at(text: str) -> float:
    """A moment given as unix seconds (``1717171717.5``) or ISO 8601 (naive means UTC).

    Raises ``ValueError`` with a one-line explanation for anything else.

    Example:
        >>> parse_at("1970-01-01T00:01:00Z")
        60.0
    """
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(
                f"'at' must be unix seconds or an ISO 8601 time, not {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"'at' must be a finite time, not {text!r}")
    return value


def updates_at(
    workshop_id: str,
    base: bytes | None,
    updates: Sequence[StoredUpdate],
    at: float,
    *,
    now: float,
) -> list[bytes]:
    """The updates whose merge is the document as of ``at`` (``Store.history`` output in).

    The state at ``at`` is the base plus the updates up to the last one committed at or
    before ``at`` (commit times are informative, so a clock that stepped back is read
    the way docs/storage.md says). Raises :class:`HistoryUnavailable` when ``at``
    predates what is kept.
    """
    last = -1
    for i, update in enumerate(updates):
        if update.stored_at <= at:
            last = i
    latest = at >= now  # not in the past: the latest state, whatever the clocks said
    if latest:
        last = len(updates) - 1
    elif last < 0 and base is not None:
        raise HistoryUnavailable(workshop_id, at, updates[0].stored_at if updates else None)
    parts = [base] if base is not None else []
    parts.extend(u.update for u in updates[: last + 1])
    return parts


async def load_updates_at(store: StoreAdmin, workshop_id: str, at: float) -> list[bytes]:
    """The stored updates that rebuild ``workshop_id`` as of ``at`` (see :func:`updates_at`)."""
    base, updates = await store.history(workshop_id)
    return updates_at(workshop_id, base, updates, at, now=time.time())


def stored_parts(stored: StoredDoc) -> list[bytes]:
    """What ``Store.load`` returned as the updates to apply in order: the snapshot, then the rest."""
    return [stored.snapshot, *stored.updates] if stored.snapshot else list(stored.updates)


def doc_from_updates(parts: Sequence[bytes]) -> Doc[Any]:
    """A new document holding the merge of ``parts`` (an empty one for none)."""
    doc: Doc[Any] = Doc()
    if parts:
        doc.apply_update(parts[0] if len(parts) == 1 else merge_updates(*parts))
    return doc
