"""The PostgreSQL store: the store of record when several server processes share workshops.

Group commit as in SQLite (:class:`~vmv_sync.storage.groupcommit.GroupCommit`), with
each batch ONE round trip: a single call of the ``vmv_commit_batch`` function
(:mod:`.schema`) in its own implicit transaction, on a dedicated writer connection
(a pooled one would add a reset round trip per batch). Everything else uses a small
pool. Any number of instances, in any number of processes, may share one database:
sequence numbers come from the workshop's row under a row lock, claims are checked
against what every instance committed, and compaction deletes only what its snapshot
covers. A lost connection (a PostgreSQL restart) fails the batch in flight with
``StorageError`` and the next batch reconnects. asyncpg needs the asyncio backend of
anyio (the server's); see docs/storage.md for why asyncpg.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import asyncpg

from ...errors import StorageError
from ..base import Invite, StoredDoc, StoredUpdate, WorkshopInfo
from ..groupcommit import GroupCommit, PendingAppend
from ..refusals import ClaimConflict, StaleEpoch
from ..rules import check_claims, check_epoch, check_updates, new_secret
from . import queries
from .schema import COMMIT_BATCH_SQL, LOCK_KEY, MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from ..base import Directory, EpochFence, RoomStore, Store, StoreAdmin

__all__ = ("PostgresStore", "redact")

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: what fails one batch (or one call) but not the store
_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a connection whose protocol state broke (seen after a kill)
    OSError,
    TimeoutError,
)


def redact(url: str) -> str:
    """``url`` without its password, for logs and errors."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class PostgresStore:
    """A :class:`~vmv_sync.storage.base.Store` (and ``Directory``, ``EpochFence``) in PostgreSQL.

    Args:
        url: a libpq-style URL, ``postgresql://user@host:5432/dbname``.
        pool_size: connections for reads, compaction and administration (the writer
            has its own).
        connect_timeout: seconds to wait for a new connection (at open, and when the
            writer reconnects after a lost connection) before the call fails.
        clock: wall-clock source for ``stored_at``/``created_at`` and the history
            window; never used for ordering.

    Example:
        >>> async with PostgresStore("postgresql://127.0.0.1/vmv") as store:  # doctest: +SKIP
        ...     seq = await store.append("w1", [update])   # committed on return
    """

    def __init__(
        self, url: str, *, pool_size: int = 4, connect_timeout: float = 10.0, clock: Callable[[], float] = time.time
    ) -> None:
        if not re.match(r"^postgres(ql)?://", url):
            raise ValueError("PostgresStore needs a postgresql:// URL")
        self.url = url
        self.name = redact(url)
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._state = _State.NEW
        self._writer: Any = None
        self._pool: Any = None
        self._group = GroupCommit(self._commit_batch, name=self.name, failures=_FAILURES)
        self._stack = AsyncExitStack()
        self._released = False

    @property
    def commits(self) -> int:
        """Committed batch transactions (fewer than ``appends`` when grouped)."""
        return self._group.commits

    @property
    def appends(self) -> int:
        return self._group.appends

    @property
    def max_batch(self) -> int:
        return self._group.max_batch

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> PostgresStore:
        if self._state is not _State.NEW:
            raise RuntimeError("a PostgresStore can be entered only once")
        await self._stack.__aenter__()
        try:
            self._stack.push_async_callback(self._close_connections)
            try:
                self._pool = await asyncpg.create_pool(
                    self.url, min_size=1, max_size=self._pool_size, timeout=self._connect_timeout
                )
                async with self._pool.acquire() as conn:
                    await _migrate(conn, self.name)
                self._writer = await asyncpg.connect(self.url, timeout=self._connect_timeout)
            except _FAILURES as exc:
                raise StorageError(f"cannot open {self.name}: {exc}") from exc
            tg = await self._stack.enter_async_context(anyio.create_task_group())
            await tg.start(self._group.run)
        except BaseException:
            self._state = _State.CLOSED
            self._released = True
            await self._stack.aclose()
            raise
        self._state = _State.OPEN
        logger.info("%s: store open", self.name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        if not self._released:
            self._released = True
            await self._stack.aclose()
            logger.info("%s: store closed after %d commits", self.name, self.commits)

    async def aclose(self) -> None:
        """Stop accepting appends, commit the pending ones and stop the writer."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSING
        if self._state is _State.CLOSING:
            await self._group.aclose()
            self._state = _State.CLOSED

    async def _close_connections(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._writer is not None:
                self._writer.terminate() if self._writer.is_closed() else await self._writer.close()
                self._writer = None
            if self._pool is not None:
                await self._pool.close()
                self._pool = None

    def _check_open(self, what: str) -> None:
        state = self._state
        if state is _State.OPEN and not self._group.accepting:
            state = _State.CLOSING
        if state is not _State.OPEN:
            raise StorageError(f"{what}: the store is {state.value}")

    # -- group commit ------------------------------------------------------------------

    async def append(
        self,
        workshop_id: str,
        updates: Sequence[bytes],
        *,
        claims: Mapping[int, str] | None = None,
        epoch: int | None = None,
    ) -> int:
        """Durably commit ``updates`` in order; return the seq of the last one.

        Refused alone with ``ClaimConflict`` (a client id another owner holds, in any
        instance) or ``StaleEpoch`` (a newer epoch was claimed); nothing of a refused
        call is stored.
        """
        data = check_updates(updates)
        owners = check_claims(claims)
        fence = check_epoch(epoch)
        self._check_open(f"workshop {workshop_id}")
        return await self._group.append(workshop_id, data, owners, fence)

    async def _commit_batch(self, batch: list[PendingAppend]) -> list[int | StorageError]:
        claims = [(i, cid, owner) for i, r in enumerate(batch, 1) for cid, owner in (r.claims or {}).items()]
        if self._writer is None or self._writer.is_closed():
            self._writer = await asyncpg.connect(self.url, timeout=self._connect_timeout)
        try:
            rows = await self._writer.fetch(
                COMMIT_BATCH_SQL,
                [r.workshop_id for r in batch],
                [len(r.updates) for r in batch],
                [r.epoch for r in batch],
                [u for r in batch for u in r.updates],
                [c[0] for c in claims],
                [c[1] for c in claims],
                [c[2] for c in claims],
                self._clock(),
            )
        except BaseException:
            # Whatever failed (a terminated backend raises AdminShutdown, a PostgresError,
            # and leaves the connection dead), the next batch starts on a fresh connection:
            # a reconnect after a rare SQL error is cheaper than reusing a broken one.
            self._writer.terminate()
            self._writer = None
            raise
        out: list[int | StorageError] = []
        for request, (seq, refusal, value, holder) in zip(batch, rows, strict=True):
            if refusal == "claim":
                owner = (request.claims or {}).get(int(value), "?")
                out.append(ClaimConflict(request.workshop_id, int(value), str(holder), owner))
            elif refusal == "epoch":
                out.append(StaleEpoch(request.workshop_id, int(request.epoch or 0), int(value)))
            else:
                out.append(int(seq))
        return out

    # -- everything else: one transaction on a pooled connection -------------------------

    async def _run(self, what: str, fn: Callable[[Any], Awaitable[T]], *, write: bool) -> T:
        self._check_open(what)
        try:
            async with self._pool.acquire() as conn:
                isolation = "read_committed" if write else "repeatable_read"
                async with conn.transaction(isolation=isolation, readonly=not write):
                    return await fn(conn)
        except _FAILURES as exc:
            logger.error("%s: %s failed: %s", self.name, what, exc)
            raise StorageError(f"{what}: {exc}") from exc

    async def load(self, workshop_id: str) -> StoredDoc:
        return await self._run(f"workshop {workshop_id}: load", partial(queries.load, workshop_id=workshop_id), write=False)

    async def compact(
        self, workshop_id: str, snapshot: bytes, upto_seq: int, *, keep_history_seconds: float = 0.0
    ) -> None:
        run = partial(
            queries.compact, workshop_id=workshop_id, snapshot=bytes(snapshot), upto_seq=upto_seq,
            keep_history_seconds=keep_history_seconds, clock=self._clock,
        )  # fmt: skip
        await self._run(f"workshop {workshop_id}: compact", run, write=True)

    async def history(self, workshop_id: str) -> tuple[bytes | None, list[StoredUpdate]]:
        return await self._run(f"workshop {workshop_id}: history", partial(queries.history, workshop_id=workshop_id), write=False)

    async def stats(self, workshop_id: str) -> tuple[int, int]:
        return await self._run(f"workshop {workshop_id}: stats", partial(queries.stats, workshop_id=workshop_id), write=False)

    async def list_workshops(self) -> list[WorkshopInfo]:
        return await self._run("list workshops", queries.list_workshops, write=False)

    async def delete(self, workshop_id: str) -> None:
        await self._run(f"workshop {workshop_id}: delete", partial(queries.delete, workshop_id=workshop_id), write=True)

    # -- the fencing epoch and the directory ---------------------------------------------

    async def claim_epoch(self, workshop_id: str) -> int:
        return await self._run(f"workshop {workshop_id}: claim epoch", partial(queries.claim_epoch, workshop_id=workshop_id), write=True)

    async def current_epoch(self, workshop_id: str) -> int:
        return await self._run(f"workshop {workshop_id}: epoch", partial(queries.current_epoch, workshop_id=workshop_id), write=False)

    async def get_or_create_secret(self, candidate: str | None = None) -> str:
        run = partial(queries.get_or_create_secret, candidate=candidate or new_secret())
        return await self._run("token secret", run, write=True)

    async def create_invite(self, workshop_id: str, code: str, facilitator_id: str) -> Invite:
        invite = Invite(workshop_id, code, facilitator_id, self._clock())
        return await self._run(f"workshop {workshop_id}: create invite", partial(queries.create_invite, invite=invite), write=True)

    async def set_invite(self, workshop_id: str, code: str) -> bool:
        run = partial(queries.set_invite, workshop_id=workshop_id, code=code)
        return await self._run(f"workshop {workshop_id}: set invite", run, write=True)

    async def get_invite(self, workshop_id: str) -> Invite | None:
        return await self._run(f"workshop {workshop_id}: invite", partial(queries.get_invite, workshop_id=workshop_id), write=False)

    async def revoke(self, workshop_id: str, participant_id: str) -> None:
        run = partial(queries.revoke, workshop_id=workshop_id, participant_id=participant_id, now=self._clock())
        await self._run(f"workshop {workshop_id}: revoke", run, write=True)

    async def revoked(self, workshop_id: str) -> frozenset[str]:
        return await self._run(f"workshop {workshop_id}: revoked", partial(queries.revoked, workshop_id=workshop_id), write=False)

    async def is_revoked(self, workshop_id: str, participant_id: str) -> bool:
        return participant_id in await self.revoked(workshop_id)


async def _migrate(conn: Any, name: str) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` under an advisory lock (once, whoever starts first)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute("CREATE TABLE IF NOT EXISTS vmv_schema (version int NOT NULL)")
        version = await conn.fetchval("SELECT version FROM vmv_schema")
        if version is None:
            await conn.execute("INSERT INTO vmv_schema (version) VALUES (0)")
            version = 0
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{name}: schema version {version} is newer than this vmv-sync ({SCHEMA_VERSION}); upgrade vmv-sync"
            )
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number]:
                await conn.execute(statement)
            await conn.execute("UPDATE vmv_schema SET version = $1", number + 1)
            logger.info("%s: migrated schema to version %d", name, number + 1)


if TYPE_CHECKING:  # mypy checks that PostgresStore implements every seam

    def _implements(store: PostgresStore) -> tuple[RoomStore, StoreAdmin, Store, Directory, EpochFence]:
        return store, store, store, store, store
