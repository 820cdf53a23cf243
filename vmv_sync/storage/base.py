"""The storage seam: what the server and the client need from a store.

A store keeps, per workshop, a snapshot (a full Yjs update, the merged state up to
a sequence number) and the updates appended after it, each with a sequence number
that orders them. Sequence numbers are strictly increasing per workshop and never
reused, even after compaction deleted rows. Time is recorded for history views but
never used for ordering: a clock that steps backwards must not hide updates on
reload.

Besides the latest snapshot a store may keep, for history views, one older *base*
snapshot and the updates after it that the latest snapshot already covers (see
``compact(..., keep_history_seconds=...)``); ``load`` skips those covered updates.

Two seams, so a room depends only on what it uses (y-redis' storage interface has
four methods): :class:`RoomStore` is the hot path (load, append, compact, the
lifecycle); :class:`StoreAdmin` is maintenance (history, stats, list, delete).
:class:`Store` is both: what a backend implements, what ``open_store`` returns and
what tools that administer a database take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, Self, runtime_checkable

__all__ = (
    "RoomStore",
    "StoreAdmin",
    "Store",
    "StoredDoc",
    "WorkshopInfo",
    "StoredUpdate",
    "Directory",
    "EpochFence",
    "Invite",
    "StoreBackend",
)


@dataclass(frozen=True)
class StoredDoc:
    """What loading a workshop returns: apply ``snapshot`` then ``updates`` in order.

    An unknown (or deleted) workshop loads as ``StoredDoc(None, (), 0)``.
    ``client_ids`` holds every client-id claim of the workshop (Yjs client id ->
    owner, the first participant, or reserved owner like ``"@server"``, that wrote
    under it): the server refuses another participant's writes under a claimed id.
    """

    snapshot: bytes | None
    updates: tuple[bytes, ...]
    #: sequence number of the last update covered (0 when nothing is stored)
    last_seq: int
    #: Yjs client id -> owner, every claim of the workshop (read-only)
    client_ids: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def update_count(self) -> int:
        return len(self.updates)

    @property
    def update_bytes(self) -> int:
        return sum(len(u) for u in self.updates)


@dataclass(frozen=True)
class StoredUpdate:
    """One stored update with its order and the wall-clock time it was committed.

    ``stored_at`` is informative only (history views); ``seq`` is the order.
    """

    seq: int
    update: bytes
    stored_at: float


@dataclass(frozen=True)
class WorkshopInfo:
    """A line of ``vmv-sync list``.

    ``updates`` and ``bytes`` count every stored update row (including covered rows
    kept for history); ``snapshot_bytes`` sums the kept snapshots; ``last_activity``
    is the wall-clock time of the last append.
    """

    workshop_id: str
    updates: int
    bytes: int
    snapshot_bytes: int
    last_activity: float | None


class RoomStore(Protocol):
    """What a room needs: a durable log of Yjs updates per workshop (the hot path).

    Implementations are used as ``async with store:``; every method is safe to call
    concurrently from many tasks of one event loop. Failures to read or write raise
    :class:`vmv_sync.errors.StorageError`; they are never swallowed.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def aclose(self) -> None:
        """Commit whatever appends are pending, then release the store."""
        ...

    async def load(self, workshop_id: str) -> StoredDoc:
        """The latest snapshot and every update after it, in sequence order."""
        ...

    async def append(
        self,
        workshop_id: str,
        updates: Sequence[bytes],
        *,
        claims: Mapping[int, str] | None = None,
    ) -> int:
        """Durably commit ``updates`` (in order) and return the last sequence number.

        When this returns, the updates survive a crash (``kill -9``) of the process.
        Concurrent calls may be grouped into one transaction; if that transaction
        fails every caller in it gets a ``StorageError``. Call it before relaying the
        updates to peers.

        ``claims`` (Yjs client id -> owner) are committed in the same transaction as
        the updates: both are stored or neither is. A claim of a client id the
        workshop already has is ignored (the first owner wins). With no updates the
        call stores only the claims and returns the current last sequence number.

        A claim of a client id the workshop gives to another owner refuses the whole
        call with :class:`~vmv_sync.storage.refusals.ClaimConflict` (nothing of it is
        stored; other appends of its batch are); a claim the owner already holds is
        a no-op. Stores also take ``epoch=`` (:class:`EpochFence`).
        """
        ...

    async def compact(
        self,
        workshop_id: str,
        snapshot: bytes,
        upto_seq: int,
        *,
        keep_history_seconds: float = 0.0,
    ) -> None:
        """Atomically replace everything up to ``upto_seq`` with ``snapshot``.

        ``snapshot`` must hold the merged state of the old snapshot and all updates with
        ``seq <= upto_seq`` (it may hold more: Yjs updates are idempotent). Updates with
        a larger sequence number, including those appended while the snapshot was being
        built, are kept. A snapshot not newer than the stored one is ignored.

        With ``keep_history_seconds > 0`` covered updates committed within that many
        seconds are kept (with the base they apply to) so ``history`` can show earlier
        states; ``load`` skips them.
        """
        ...


class StoreAdmin(Protocol):
    """Maintenance and administration of a store: off the hot path.

    History views, compaction decisions from outside a room, ``vmv-sync list`` and
    deletion. Same error rules as :class:`RoomStore`. Backup is not here: it is
    backend-specific (a file copy for SQLite; a PostgreSQL store would be backed up
    by its server), see :meth:`vmv_sync.storage.SQLiteStore.backup`.
    """

    async def history(self, workshop_id: str) -> tuple[bytes | None, list[StoredUpdate]]:
        """A base snapshot and every stored update after it, with commit times.

        Applying the base (``None``: an empty document) then the updates in order
        rebuilds every state from the base onwards; updates are contiguous in ``seq``.
        States older than the base cannot be shown.
        """
        ...

    async def stats(self, workshop_id: str) -> tuple[int, int]:
        """``(updates, bytes)`` stored after the latest snapshot: when to compact."""
        ...

    async def list_workshops(self) -> list[WorkshopInfo]:
        """Every stored workshop, by id."""
        ...

    async def delete(self, workshop_id: str) -> None:
        """Forget a workshop entirely, claims included (its seqs start again at 1)."""
        ...


class Store(RoomStore, StoreAdmin, Protocol):
    """A complete store: the room's hot path and the administration, one lifecycle.

    :class:`~vmv_sync.storage.SQLiteStore` and :class:`~vmv_sync.storage.MemoryStore`
    implement it. Code that only loads, appends and compacts should ask for a
    :class:`RoomStore`, so a wrapper (metrics, a remote log) need not implement the rest.
    """


@dataclass(frozen=True)
class Invite:
    """A workshop's invite code and who created the workshop (its first facilitator)."""

    workshop_id: str
    code: str
    facilitator_id: str
    created_at: float


@runtime_checkable
class Directory(Protocol):
    """Who may join: the token secret, invite codes and revocations, kept by the store.

    Why in the store: with several server processes on one database they must agree
    on the secret (a token minted by one is valid on every other), on the current
    invite code and on who was removed. Small and rarely written; every backend
    implements it (SQLite, memory, PostgreSQL).
    """

    async def get_or_create_secret(self, candidate: str | None = None) -> str:
        """The store's token secret; the first call stores ``candidate`` (or a random one).

        Race-free between processes: whoever stores first wins and every caller gets
        that value. ``candidate`` lets an older deployment import its secret file.
        """
        ...

    async def create_invite(self, workshop_id: str, code: str, facilitator_id: str) -> Invite:
        """Record a new workshop's invite; ``StorageError`` if it already has one."""
        ...

    async def set_invite(self, workshop_id: str, code: str) -> bool:
        """Replace the invite code (the old one stops working); False for an unknown workshop."""
        ...

    async def get_invite(self, workshop_id: str) -> Invite | None:
        """The workshop's current invite, ``None`` if it has none."""
        ...

    async def revoke(self, workshop_id: str, participant_id: str) -> None:
        """Remove a participant for good (idempotent); ``delete`` keeps revocations."""
        ...

    async def revoked(self, workshop_id: str) -> frozenset[str]:
        """Every revoked participant id of the workshop."""
        ...

    async def is_revoked(self, workshop_id: str, participant_id: str) -> bool:
        """Whether ``participant_id`` was revoked in the workshop."""
        ...


class EpochFence(Protocol):
    """A fencing epoch per workshop: a stale owner's appends are refused by the store.

    ``claim_epoch`` records a new, larger epoch and returns it; an ``append`` made
    with ``epoch=e`` is refused with :class:`~vmv_sync.storage.refusals.StaleEpoch`
    once a newer epoch was recorded. An append without ``epoch`` is never fenced, so
    single-process callers need not know about epochs. Epochs survive ``delete``.
    """

    async def claim_epoch(self, workshop_id: str) -> int:
        """Record and return the workshop's next epoch (1 for the first claim)."""
        ...

    async def current_epoch(self, workshop_id: str) -> int:
        """The latest recorded epoch, 0 when none was claimed."""
        ...

    async def append(
        self,
        workshop_id: str,
        updates: Sequence[bytes],
        *,
        claims: Mapping[int, str] | None = None,
        epoch: int | None = None,
    ) -> int:
        """:meth:`RoomStore.append`, refused if ``epoch`` is older than the recorded one."""
        ...


class StoreBackend(Store, Directory, EpochFence, Protocol):
    """Everything a backend implements (SQLite, PostgreSQL, memory): what ``open_store`` returns.

    Code that takes a store from outside (a wrapper, a test double) asks for
    :class:`Store` or :class:`RoomStore`; only code that opened the store itself can
    count on the directory and the fence.
    """

    async def append(
        self,
        workshop_id: str,
        updates: Sequence[bytes],
        *,
        claims: Mapping[int, str] | None = None,
        epoch: int | None = None,
    ) -> int:
        """:meth:`RoomStore.append` with :class:`EpochFence`'s optional ``epoch``."""
        ...
