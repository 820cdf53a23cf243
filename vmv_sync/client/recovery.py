"""Recovering from a refusal: rebuild the replica, learn what the server kept, re-make the rest.

When the server refuses one of our updates (close 4403: our client id belongs to
someone else, or a write rule), nothing of it is applied and every frame queued
after it is dropped. Our pending edits are then under suspicion: some may be
committed (their ``saved`` never arrived), the rest are not, and the refused one
must not be sent again. Recovery:

1. rebuild the document from the replica log only (server state and confirmed
   edits) under a fresh random client id; pending rows are set aside (not applied,
   not sent) and new actions are held;
2. reconnect: our step 1 carries the rebuilt document's state vector, so the
   server's step 2 brings back whatever of ours it did commit;
3. classify the set-aside rows: the server integrates our updates in send order
   and refuses at the first bad one, so the rows it has form a prefix
   (:func:`integrated_prefix`); those are confirmed. Of the rest, the first is the
   refused one when it travelled alone in its frame in a session that was itself
   a recovery (:func:`pinned_row`); it is dropped and recorded. Every other row is
   re-made from its intent under the new client id, one per frame, so that a
   repeated refusal pins its culprit next time.

Each step is bounded: a recovery that confirms nothing and pins nothing counts as
fruitless, and three in a row make the refusal permanent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from ..errors import CLIENT_ID_TAKEN_PREFIX
from ..protocol import decode_state_vector
from ..protocol.update import summarize_update
from .replica import Row

__all__ = ("Refusal", "Recovery", "Refused", "integrated_prefix", "pinned_row", "is_client_id_refusal", "MAX_FRUITLESS")


#: consecutive recoveries that change nothing before the refusal is taken as permanent
MAX_FRUITLESS = 3


def is_client_id_refusal(reason: str) -> bool:
    """Whether a 4403's reason says our client id is taken (a fresh one cures it).

    The server says so with :data:`~vmv_sync.errors.CLIENT_ID_TAKEN_PREFIX`, for an
    update and for an awareness state under another participant's client id alike.
    """
    return reason.startswith(CLIENT_ID_TAKEN_PREFIX)


@dataclass(frozen=True)
class Refused:
    """A local edit that will never reach the server, and why (``client.refused``)."""

    #: the action, e.g. ``set_stage('values-matrix')``, or ``edit()`` for one without intent
    action: str
    reason: str


@dataclass(frozen=True)
class Refusal:
    """A 4403 that starts a recovery."""

    reason: str
    #: our client id was refused (nothing to pin: everything is re-made)
    client_id_taken: bool
    #: the pending-log seqs of each counted frame of the refused session, in send order
    frames: tuple[tuple[int, ...], ...]
    #: the refused session was itself a recovery (its rows went one per frame)
    in_recovery: bool
    old_client_id: int


@dataclass
class Recovery:
    """A recovery under way: set in motion by a refusal, finished at the next sync."""

    refusal: Refusal
    #: the rows set aside at the rebuild, oldest first
    suspects: list[Row]


def integrated_prefix(doc: Doc[Any], rows: Sequence[Row]) -> int:
    """How many leading ``rows`` ``doc`` already holds in full.

    Each row is applied to a scratch copy of ``doc``: one that changes nothing was
    integrated. The first that changes something ends the prefix (a later row could
    only look integrated because it waits for that one).
    """
    if not rows:
        return 0
    scratch: Doc[Any] = Doc()
    scratch.apply_update(doc.get_update())
    changes: list[bytes] = []
    subscription = scratch.observe(lambda event: changes.append(event.update))
    try:
        for count, row in enumerate(rows):
            if row.update is None:
                return count
            changes.clear()
            scratch.apply_update(row.update)
            if any(change != b"\x00\x00" for change in changes):
                return count
            # A row that depends on something the document lacks also changes nothing:
            # yrs parks it as pending. It is not on the server (and confirming it would
            # make every later update of ours depend on it: 4400 on every reconnect).
            if not summarize_update(row.update).integrated_in(decode_state_vector(scratch.get_state())):
                return count
        return len(rows)
    finally:
        scratch.unobserve(subscription)


def pinned_row(refusal: Refusal, lacking: Sequence[Row]) -> Row | None:
    """The refused row, when the refusal says for certain which one it was."""
    if refusal.client_id_taken or not refusal.in_recovery or not lacking:
        return None
    first = lacking[0]
    for frame in refusal.frames:
        if first.seq in frame:
            return first if frame == (first.seq,) else None
    return None
