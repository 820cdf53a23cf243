"""Refusals: an ``append`` the store would not commit, for a reason the caller must act on.

Both are :class:`~vmv_sync.errors.StorageError` subclasses, so a caller that only
knows "the commit failed" (today's room: nothing of the batch is acknowledged or
relayed) stays correct; a caller that knows them can refuse the offending update
instead (a claim conflict is a ``ClientIdTaken`` for the writer) or stand down (a
stale epoch means another process now owns the workshop). Only the refused
``append`` fails: the others of its group-commit batch are committed.
"""

from __future__ import annotations

from ..errors import StorageError

__all__ = ("ClaimConflict", "StaleEpoch")


class ClaimConflict(StorageError):
    """The append claims a Yjs client id that the workshop's store already gives to another owner.

    Nothing of the append (neither its updates nor any of its claims) is stored.
    Another store instance on the same database may have made the first claim.
    """

    def __init__(self, workshop_id: str, client_id: int, owner: str, claimed_by: str) -> None:
        super().__init__(
            f"workshop {workshop_id}: client id {client_id} belongs to {owner!r}, refused for {claimed_by!r}"
        )
        self.workshop_id = workshop_id
        self.client_id = client_id
        #: who holds the id in the store
        self.owner = owner
        #: who the refused append claimed it for
        self.claimed_by = claimed_by


class StaleEpoch(StorageError):
    """The append carries a fencing epoch older than the one recorded for the workshop.

    Another process claimed the workshop (``claim_epoch``) after this writer did; the
    writer must stop writing and reload. Nothing of the append is stored.
    """

    def __init__(self, workshop_id: str, epoch: int, current: int) -> None:
        super().__init__(
            f"workshop {workshop_id}: epoch {epoch} is stale (epoch {current} was claimed since); "
            "another process owns the workshop"
        )
        self.workshop_id = workshop_id
        self.epoch = epoch
        self.current = current
