"""The SQLite store: every Yjs update is committed here before it is relayed.

A :class:`~vmv_sync.storage.groupcommit.GroupCommit` writer takes every pending
``append`` and commits them in ONE transaction on a worker thread: callers arriving
during a commit join the next batch, so throughput comes from batching, never from
delaying a commit with a timer. Reads use a second connection, so WAL lets them run
while the writer commits. This module is the lifecycle and the threading; the SQL is
in :mod:`.schema`, :mod:`.reads`, :mod:`.writes` and :mod:`.backup`. See
docs/storage.md for the schema, the durability choice and the compaction rules.
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import anyio
import anyio.to_thread

from ...errors import StorageError
from ..base import Invite, StoredDoc, StoredUpdate, WorkshopInfo
from ..groupcommit import GroupCommit, PendingAppend
from ..rules import check_claims, check_epoch, check_updates, new_secret
from . import directory, reads, writes
from .backup import copy_database, restore_database
from .schema import connect, migrate

if TYPE_CHECKING:
    from ..base import Directory, EpochFence, RoomStore, Store, StoreAdmin

__all__ = ("SQLiteStore",)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class SQLiteStore:
    """A durable :class:`~vmv_sync.storage.base.Store` in one SQLite file (WAL mode).

    Both a :class:`~vmv_sync.storage.base.RoomStore` (what rooms use) and a
    :class:`~vmv_sync.storage.base.StoreAdmin` (history, stats, list, delete), plus
    :meth:`backup` and :meth:`restore`.

    Args:
        path: the database file; its parent folder is created if missing.
        busy_timeout: seconds to wait for a lock held by another process.
        synchronous: ``"FULL"`` (default) fsyncs the WAL at every commit, so a
            returned ``append`` survives power loss as well as ``kill -9``;
            ``"NORMAL"`` survives ``kill -9`` only, and is faster on slow disks.
        clock: wall-clock source for ``stored_at``/``created_at`` and the history
            window (tests pass a fake one); never used for ordering.

    Example:
        >>> async with SQLiteStore("data/vmv.sqlite3") as store:  # doctest: +SKIP
        ...     seq = await store.append("w1", [update])   # committed on return
        ...     doc = await store.load("w1")
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError("SQLiteStore needs a file path; use MemoryStore in memory")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._clock = clock
        self._state = _State.NEW
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        # One thread at a time per connection; the writer's limiter also orders
        # group commits, compactions and deletes.
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)
        #: workshop id -> last committed seq (see writes.commit_batch)
        self._seq_cache: dict[str, int] = {}
        #: ``PRAGMA data_version`` at our last commit: it changes when another connection commits
        self._data_version: int | None = None
        self._group = GroupCommit(self._commit_batch, name=str(self.path), failures=(sqlite3.Error, OSError))
        self._stack = AsyncExitStack()
        self._released = False

    # -- metrics (the group commit's counters) -----------------------------------------

    @property
    def commits(self) -> int:
        """Committed write transactions of appends (fewer than ``appends`` when grouped)."""
        return self._group.commits

    @property
    def appends(self) -> int:
        """``append`` calls committed."""
        return self._group.appends

    @property
    def max_batch(self) -> int:
        """The largest number of ``append`` calls committed in one transaction."""
        return self._group.max_batch

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> SQLiteStore:
        if self._state is not _State.NEW:
            raise RuntimeError("an SQLiteStore can be entered only once")
        await self._stack.__aenter__()
        try:
            try:
                await anyio.to_thread.run_sync(self._open_sync, limiter=self._write_limiter)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {self.path}: {exc}") from exc
            finally:
                self._stack.push_async_callback(self._close_connections)
            tg = await self._stack.enter_async_context(anyio.create_task_group())
            await tg.start(self._group.run)
        except BaseException:
            self._state = _State.CLOSED
            self._released = True
            await self._stack.aclose()
            raise
        self._state = _State.OPEN
        logger.info("%s: store open (synchronous=%s)", self.path, self._synchronous)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        if not self._released:
            self._released = True
            await self._stack.aclose()  # the writer has returned; close the connections
            logger.info("%s: store closed after %d commits", self.path, self.commits)

    async def aclose(self) -> None:
        """Stop accepting appends, commit the pending ones and stop the writer.

        Safe to call from any task (a shutdown phase "flush store"); the connections
        are released when the ``async with`` block exits. Appends made after this
        started fail with ``StorageError``.
        """
        if self._state is _State.OPEN:
            self._state = _State.CLOSING
        if self._state is _State.CLOSING:
            await self._group.aclose()
            self._state = _State.CLOSED

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = connect(self.path, self._busy_timeout)
        mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{self.path}: cannot use WAL mode (got {mode!r})")
        self._writer.execute(f"PRAGMA synchronous = {self._synchronous}")
        migrate(self._writer, self.path)
        self._reader = connect(self.path, self._busy_timeout)
        self._reader.execute("PRAGMA query_only = ON")

    async def _close_connections(self) -> None:
        def close() -> None:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()  # the last close checkpoints the WAL

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close, limiter=self._write_limiter)

    def _check_open(self, what: str) -> None:
        state = self._state
        if state is _State.OPEN and not self._group.accepting:
            state = _State.CLOSING  # the writer stopped (cancelled): so is the store
        if state is not _State.OPEN:
            raise StorageError(f"{what}: the store is {state.value}")

    # -- group commit --------------------------------------------------------------

    async def append(
        self,
        workshop_id: str,
        updates: Sequence[bytes],
        *,
        claims: Mapping[int, str] | None = None,
        epoch: int | None = None,
    ) -> int:
        """Durably commit ``updates`` in order; return the seq of the last one.

        ``claims`` (Yjs client id -> owner) go into the same transaction; a client id
        another owner holds refuses the call (``ClaimConflict``), and ``epoch`` older
        than the recorded one refuses it (``StaleEpoch``). Returns only after COMMIT.
        If the caller is cancelled while waiting, the updates may or may not have
        been committed.
        """
        data = check_updates(updates)
        owners = check_claims(claims)
        fence = check_epoch(epoch)
        self._check_open(f"workshop {workshop_id}")
        return await self._group.append(workshop_id, data, owners, fence)

    async def _commit_batch(self, batch: list[PendingAppend]) -> list[int | StorageError]:
        return await anyio.to_thread.run_sync(self._commit_sync, batch, limiter=self._write_limiter)

    def _commit_sync(self, batch: list[PendingAppend]) -> list[int | StorageError]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` for the whole batch (a worker thread).

        Another store instance (or the CLI) on the same file changes ``data_version``
        when it commits: then the seq cache is dropped and re-read under our write
        lock, so two writers never reuse a sequence number.
        """
        conn = self._require(self._writer)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._seq_cache.clear()
                self._data_version = version
            seqs = writes.commit_batch(conn, batch, self._clock(), self._seq_cache)
            conn.execute("COMMIT")
        except BaseException:
            self._seq_cache.clear()  # the table is the truth again after a failure
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return seqs

    # -- helpers -------------------------------------------------------------------

    def _require(self, conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise StorageError(f"{self.path}: the store is not open")
        return conn

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``fn`` in one transaction on a worker thread; map SQLite errors."""
        self._check_open(what)

        def run() -> T:
            conn = self._require(self._writer if write else self._reader)
            # A read transaction too: snapshot and updates must come from one state,
            # or a compaction between the two SELECTs would hide updates.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        limiter = self._write_limiter if write else self._read_limiter
        try:
            return await anyio.to_thread.run_sync(run, limiter=limiter)
        except sqlite3.Error as exc:
            logger.error("%s: %s failed: %s", self.path, what, exc)
            raise StorageError(f"{what}: {exc}") from exc

    # -- the room's reads and writes --------------------------------------------------

    async def load(self, workshop_id: str) -> StoredDoc:
        return await self._run(f"workshop {workshop_id}: load", partial(reads.load, workshop_id=workshop_id), write=False)

    async def compact(
        self,
        workshop_id: str,
        snapshot: bytes,
        upto_seq: int,
        *,
        keep_history_seconds: float = 0.0,
    ) -> None:
        data = bytes(snapshot)

        def run(conn: sqlite3.Connection) -> None:
            writes.compact(conn, workshop_id, data, upto_seq, keep_history_seconds, self._clock)

        await self._run(f"workshop {workshop_id}: compact", run, write=True)

    # -- administration ----------------------------------------------------------------

    async def history(self, workshop_id: str) -> tuple[bytes | None, list[StoredUpdate]]:
        return await self._run(
            f"workshop {workshop_id}: history", partial(reads.history, workshop_id=workshop_id), write=False
        )

    async def stats(self, workshop_id: str) -> tuple[int, int]:
        return await self._run(f"workshop {workshop_id}: stats", partial(reads.stats, workshop_id=workshop_id), write=False)

    async def list_workshops(self) -> list[WorkshopInfo]:
        return await self._run("list workshops", reads.list_workshops, write=False)

    async def delete(self, workshop_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            writes.delete(conn, workshop_id)
            self._seq_cache.pop(workshop_id, None)

        await self._run(f"workshop {workshop_id}: delete", run, write=True)

    # -- the fencing epoch and the directory (EpochFence, Directory) -------------------

    async def claim_epoch(self, workshop_id: str) -> int:
        return await self._run(f"workshop {workshop_id}: claim epoch", partial(directory.claim_epoch, workshop_id=workshop_id), write=True)

    async def current_epoch(self, workshop_id: str) -> int:
        return await self._run(f"workshop {workshop_id}: epoch", partial(directory.current_epoch, workshop_id=workshop_id), write=False)

    async def get_or_create_secret(self, candidate: str | None = None) -> str:
        return await self._run("token secret", partial(directory.get_or_create_secret, candidate=candidate or new_secret()), write=True)

    async def create_invite(self, workshop_id: str, code: str, facilitator_id: str) -> Invite:
        invite = Invite(workshop_id, code, facilitator_id, self._clock())
        return await self._run(f"workshop {workshop_id}: create invite", partial(directory.create_invite, invite=invite), write=True)

    async def set_invite(self, workshop_id: str, code: str) -> bool:
        return await self._run(f"workshop {workshop_id}: set invite", partial(directory.set_invite, workshop_id=workshop_id, code=code), write=True)

    async def get_invite(self, workshop_id: str) -> Invite | None:
        return await self._run(f"workshop {workshop_id}: invite", partial(directory.get_invite, workshop_id=workshop_id), write=False)

    async def revoke(self, workshop_id: str, participant_id: str) -> None:
        run = partial(directory.revoke, workshop_id=workshop_id, participant_id=participant_id, now=self._clock())
        await self._run(f"workshop {workshop_id}: revoke", run, write=True)

    async def revoked(self, workshop_id: str) -> frozenset[str]:
        return await self._run(f"workshop {workshop_id}: revoked", partial(directory.revoked, workshop_id=workshop_id), write=False)

    async def is_revoked(self, workshop_id: str, participant_id: str) -> bool:
        return participant_id in await self.revoked(workshop_id)

    async def backup(self, dest_path: str | os.PathLike[str]) -> None:
        """Copy the database to ``dest_path`` while the server keeps writing.

        Uses SQLite's online backup API from a fresh connection in one step, so the
        copy is one consistent state holding every update (and claim) committed
        before the copy began. An existing ``dest_path`` is overwritten
        (transactionally). The copy is a single self-contained file (rollback-journal
        mode).
        """
        self._check_open("backup")
        dest = Path(dest_path)
        if dest.resolve() == self.path.resolve():
            raise ValueError("cannot back up a database onto itself")
        try:
            await anyio.to_thread.run_sync(copy_database, self.path, dest, self._busy_timeout)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"backup of {self.path} to {dest}: {exc}") from exc
        logger.info("%s: backed up to %s", self.path, dest)

    @classmethod
    async def restore(
        cls,
        src: str | os.PathLike[str],
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
    ) -> None:
        """Make ``dest`` a copy of the backup ``src`` after checking it.

        Run it with no server using ``dest``: a running store would keep its own view.
        Refuses to replace an existing ``dest`` unless ``overwrite`` is true. An older
        schema version is accepted; opening ``dest`` migrates it.
        """
        src_path, dest_path = Path(src), Path(dest)
        try:
            await anyio.to_thread.run_sync(partial(restore_database, src_path, dest_path, overwrite=overwrite))
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"restore of {src_path} to {dest_path}: {exc}") from exc
        logger.info("restored %s to %s", src_path, dest_path)


if TYPE_CHECKING:  # mypy checks that SQLiteStore implements every seam

    def _implements(store: SQLiteStore) -> tuple[RoomStore, StoreAdmin, Store, Directory, EpochFence]:
        return store, store, store, store, store
