"""An in-memory :class:`~vmv_sync.storage.base.Store` for tests of other modules.

It follows the same rules as :class:`~vmv_sync.storage.sqlite.SQLiteStore`
(sequence numbers, client-id claims, compaction, history window, epochs, the
directory) so that one contract test suite runs over every backend; it is not
durable. Several stores may share one :class:`MemoryDatabase` (two "processes" on
one database, for the two-instance contract tests). The shared rules live in
:mod:`.rules` (re-exported here for older imports).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ..errors import StorageError
from .base import Invite, StoredDoc, StoredUpdate, WorkshopInfo
from .refusals import ClaimConflict, StaleEpoch
from .rules import check_claims, check_epoch, check_updates, history_boundary, new_secret

if TYPE_CHECKING:
    from .base import Directory, EpochFence, RoomStore, Store, StoreAdmin

__all__ = ("MemoryStore", "MemoryDatabase", "history_boundary", "check_updates")

logger = logging.getLogger(__name__)


@dataclass
class _Workshop:
    last_seq: int = 0
    history_from: int = 0
    last_activity: float | None = None
    #: upto_seq -> (data, created_at); at most the base and the latest
    snapshots: dict[int, tuple[bytes, float]] = field(default_factory=dict)
    updates: list[StoredUpdate] = field(default_factory=list)
    #: client id -> (owner, claimed_at); never touched by compaction
    client_ids: dict[int, tuple[str, float]] = field(default_factory=dict)

    def latest_snapshot_seq(self) -> int:
        return max(self.snapshots, default=0)


@dataclass
class MemoryDatabase:
    """What a :class:`MemoryStore` keeps; pass one to several stores to share it."""

    workshops: dict[str, _Workshop] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    invites: dict[str, Invite] = field(default_factory=dict)
    revoked: dict[str, set[str]] = field(default_factory=dict)
    secret: str | None = None


class MemoryStore:
    """A :class:`Store` held in a dict; every call yields once, like a real store.

    Example:
        >>> async with MemoryStore() as store:  # doctest: +SKIP
        ...     seq = await store.append("w1", [update])
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, database: MemoryDatabase | None = None) -> None:
        self._clock = clock
        self.database = database if database is not None else MemoryDatabase()
        self._workshops = self.database.workshops
        self._closed = False
        #: number of "transactions" (one per append call), mirrors SQLiteStore.commits
        self.commits = 0

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the store is closed")

    async def append(
        self,
        workshop_id: str,
        updates: Sequence[bytes],
        *,
        claims: Mapping[int, str] | None = None,
        epoch: int | None = None,
    ) -> int:
        data = check_updates(updates)
        owners = check_claims(claims)
        fence = check_epoch(epoch)
        await anyio.lowlevel.checkpoint()
        self._check_open()
        current = self.database.epochs.get(workshop_id, 0)
        if fence is not None and current > fence:
            raise StaleEpoch(workshop_id, fence, current)
        ws = self._workshops.setdefault(workshop_id, _Workshop())
        for client_id, owner in (owners or {}).items():
            held = ws.client_ids.get(client_id)
            if held is not None and held[0] != owner:
                raise ClaimConflict(workshop_id, client_id, held[0], owner)
        now = self._clock()
        for u in data:
            ws.last_seq += 1
            ws.updates.append(StoredUpdate(ws.last_seq, u, now))
        for client_id, owner in (owners or {}).items():
            ws.client_ids.setdefault(client_id, (owner, now))
        ws.last_activity = now
        self.commits += 1
        return ws.last_seq

    async def load(self, workshop_id: str) -> StoredDoc:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        ws = self._workshops.get(workshop_id)
        if ws is None:
            return StoredDoc(None, (), 0)
        top = ws.latest_snapshot_seq()
        snapshot = ws.snapshots[top][0] if top else None
        return StoredDoc(
            snapshot,
            tuple(u.update for u in ws.updates if u.seq > top),
            ws.last_seq,
            MappingProxyType({cid: owner for cid, (owner, _) in ws.client_ids.items()}),
        )

    async def compact(
        self,
        workshop_id: str,
        snapshot: bytes,
        upto_seq: int,
        *,
        keep_history_seconds: float = 0.0,
    ) -> None:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        ws = self._workshops.get(workshop_id)
        last_seq = ws.last_seq if ws else 0
        if upto_seq < 0 or upto_seq > last_seq:
            raise ValueError(
                f"workshop {workshop_id!r}: cannot compact up to seq {upto_seq}, "
                f"last committed seq is {last_seq}"
            )
        if ws is None or upto_seq <= ws.latest_snapshot_seq():
            logger.debug("workshop %s: stale compaction to %d ignored", workshop_id, upto_seq)
            return
        now = self._clock()
        first_in_window = None
        if keep_history_seconds > 0:
            cutoff = now - keep_history_seconds
            first_in_window = min(
                (
                    u.seq
                    for u in ws.updates
                    if ws.history_from < u.seq <= upto_seq and u.stored_at > cutoff
                ),
                default=None,
            )
        d = history_boundary(ws.history_from, ws.snapshots, upto_seq, first_in_window)
        ws.snapshots[upto_seq] = (bytes(snapshot), now)
        ws.snapshots = {s: v for s, v in ws.snapshots.items() if s in (d, upto_seq)}
        ws.updates = [u for u in ws.updates if u.seq > d]
        ws.history_from = d

    async def history(self, workshop_id: str) -> tuple[bytes | None, list[StoredUpdate]]:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        ws = self._workshops.get(workshop_id)
        if ws is None:
            return None, []
        base = ws.snapshots[ws.history_from][0] if ws.history_from else None
        return base, list(ws.updates)

    async def stats(self, workshop_id: str) -> tuple[int, int]:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        ws = self._workshops.get(workshop_id)
        if ws is None:
            return 0, 0
        top = ws.latest_snapshot_seq()
        after = [u for u in ws.updates if u.seq > top]
        return len(after), sum(len(u.update) for u in after)

    async def list_workshops(self) -> list[WorkshopInfo]:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        return [
            WorkshopInfo(
                workshop_id=wid,
                updates=len(ws.updates),
                bytes=sum(len(u.update) for u in ws.updates),
                snapshot_bytes=sum(len(d) for d, _ in ws.snapshots.values()),
                last_activity=ws.last_activity,
            )
            for wid, ws in sorted(self._workshops.items())
        ]

    async def delete(self, workshop_id: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        self._workshops.pop(workshop_id, None)
        self.database.invites.pop(workshop_id, None)  # revocations and epochs stay

    # -- the fencing epoch ---------------------------------------------------------------

    async def claim_epoch(self, workshop_id: str) -> int:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        epoch = self.database.epochs.get(workshop_id, 0) + 1
        self.database.epochs[workshop_id] = epoch
        return epoch

    async def current_epoch(self, workshop_id: str) -> int:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        return self.database.epochs.get(workshop_id, 0)

    # -- the directory -------------------------------------------------------------------

    async def get_or_create_secret(self, candidate: str | None = None) -> str:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        if self.database.secret is None:
            self.database.secret = candidate or new_secret()
        return self.database.secret

    async def create_invite(self, workshop_id: str, code: str, facilitator_id: str) -> Invite:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        if workshop_id in self.database.invites:
            raise StorageError(f"workshop {workshop_id}: it already has an invite")
        invite = Invite(workshop_id, code, facilitator_id, self._clock())
        self.database.invites[workshop_id] = invite
        return invite

    async def set_invite(self, workshop_id: str, code: str) -> bool:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        old = self.database.invites.get(workshop_id)
        if old is None:
            return False
        self.database.invites[workshop_id] = Invite(workshop_id, code, old.facilitator_id, old.created_at)
        return True

    async def get_invite(self, workshop_id: str) -> Invite | None:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        return self.database.invites.get(workshop_id)

    async def revoke(self, workshop_id: str, participant_id: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        self.database.revoked.setdefault(workshop_id, set()).add(participant_id)

    async def revoked(self, workshop_id: str) -> frozenset[str]:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        return frozenset(self.database.revoked.get(workshop_id, ()))

    async def is_revoked(self, workshop_id: str, participant_id: str) -> bool:
        return participant_id in await self.revoked(workshop_id)


if TYPE_CHECKING:  # mypy checks that MemoryStore implements every seam

    def _implements(store: MemoryStore) -> tuple[RoomStore, StoreAdmin, Store, Directory, EpochFence]:
        return store, store, store, store, store
