"""The webhook outbox in PostgreSQL: one outbox for every process of a cluster.

The same tables and rules as the SQLite outbox (:mod:`.webhook_outbox`), in the
database the store uses (``VMV_DB``), with a small pool of its own (asyncpg):

- ``record`` takes a transaction-level advisory lock on the workshop, then moves the
  cursor with ``UPDATE ... WHERE version = $read`` (or ``INSERT ... ON CONFLICT DO
  NOTHING`` for a first cursor) and inserts the events only if that touched a row.
  Two processes that examined the same change race on the cursor's row: the second
  waits for the first to commit, finds another version and writes nothing. The lock
  also makes every writer of a workshop's events (an export's event has no cursor)
  take its row ids and commit one after the other, so within a line, id order is
  commit order and a sender never sees a later event before an earlier one.
- ``heads`` claims with one ``UPDATE ... RETURNING`` over the line heads that are due
  and unclaimed; a concurrent claimer of the same row waits for the first, re-checks
  ``claimed_until`` on the committed row and skips it. A row deleted meanwhile (it was
  delivered) is skipped too; the line's next head is claimed on a later round.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from ..errors import StorageError
from ..storage.postgres.store import redact
from .webhook_outbox import Cursor, Pending

if TYPE_CHECKING:
    from .webhook_outbox import WebhookOutbox

__all__ = ("PostgresOutbox",)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``pg_advisory_xact_lock`` key of creating the tables (not the store's migration key)
_SCHEMA_LOCK = 0x766D76686F6F6B73

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS webhook_outbox (
        id bigserial PRIMARY KEY,
        endpoint text NOT NULL,
        workshop_id text NOT NULL,
        event_id text NOT NULL,
        body text NOT NULL,
        created_at double precision NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt double precision NOT NULL DEFAULT 0,
        claimed_until double precision NOT NULL DEFAULT 0,
        claimed_by text,
        UNIQUE (endpoint, event_id))""",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_queue ON webhook_outbox (endpoint, workshop_id, id)",
    """CREATE TABLE IF NOT EXISTS webhook_cursor (
        workshop_id text PRIMARY KEY,
        seq bigint NOT NULL,
        summary text NOT NULL,
        updated_at double precision NOT NULL,
        version bigint NOT NULL DEFAULT 1)""",
)

#: every line's head with its due and claim times
_HEADS = """SELECT DISTINCT ON (endpoint, workshop_id) id, next_attempt, claimed_until
    FROM webhook_outbox ORDER BY endpoint, workshop_id, id"""

_CLAIM = f"""WITH due AS (
        SELECT id FROM ({_HEADS}) h WHERE next_attempt <= $1 AND claimed_until <= $1 ORDER BY id LIMIT $4)
    UPDATE webhook_outbox o SET claimed_until = $2, claimed_by = $3
    FROM due WHERE o.id = due.id AND o.claimed_until <= $1
    RETURNING o.id, o.endpoint, o.workshop_id, o.event_id, o.body, o.attempts, o.claimed_until"""

#: what fails one call but not the server (the sender and the watcher retry later)
_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class PostgresOutbox:
    """The outbox and cursor tables in the PostgreSQL database at ``url``.

    Args:
        url: the store's ``postgresql://`` URL.
        lease: how long a claim lasts, in seconds.
        pool_size: connections of its own (events are few: two are plenty).
    """

    #: a process that committed a change may die before examining it: others look again
    sweep_seconds: float | None = 60.0
    #: other processes queue rows this one's sender is not woken for
    poll_seconds = 2.0

    def __init__(self, url: str, *, lease: float = 35.0, pool_size: int = 2, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.name = redact(url)
        self.lease = lease
        self.owner = uuid.uuid4().hex
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool: Any = None

    async def __aenter__(self) -> PostgresOutbox:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self._pool_size, timeout=self._connect_timeout
            )
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                for statement in _SCHEMA:
                    await conn.execute(statement)
        except _FAILURES as exc:
            await self._close()
            raise StorageError(f"webhook outbox in {self.name}: {exc}") from exc
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _run(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StorageError(f"webhook outbox in {self.name}: {what}: not open")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                return await fn(conn)
        except _FAILURES as exc:
            raise StorageError(f"webhook outbox in {self.name}: {what}: {exc}") from exc

    async def cursor(self, workshop_id: str) -> Cursor | None:
        async def read(conn: Any) -> Any:
            return await conn.fetchrow(
                "SELECT seq, summary, version, updated_at FROM webhook_cursor WHERE workshop_id = $1", workshop_id
            )

        row = await self._run("cursor", read)
        return None if row is None else Cursor(int(row[0]), json.loads(row[1]), int(row[2]), float(row[3]))

    async def cursors(self) -> dict[str, float]:
        async def read(conn: Any) -> Any:
            return await conn.fetch("SELECT workshop_id, updated_at FROM webhook_cursor")

        return {str(row[0]): float(row[1]) for row in await self._run("cursors", read)}

    async def record(
        self, workshop_id: str, cursor: Cursor | None, events: Sequence[tuple[str, str]], endpoints: Sequence[str]
    ) -> bool:
        now = time.time()

        async def write(conn: Any) -> bool:
            # one writer of this workshop's rows at a time: ids are taken in commit order
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('vmv-webhook:' || $1))", workshop_id)
            if cursor is not None:
                summary = json.dumps(cursor.summary, sort_keys=True)
                if cursor.version == 0:
                    moved = await conn.fetchval(
                        "INSERT INTO webhook_cursor (workshop_id, seq, summary, updated_at, version)"
                        " VALUES ($1, $2, $3, $4, 1) ON CONFLICT (workshop_id) DO NOTHING RETURNING version",
                        workshop_id, cursor.seq, summary, now,
                    )  # fmt: skip
                else:
                    moved = await conn.fetchval(
                        "UPDATE webhook_cursor SET seq = $2, summary = $3, updated_at = $4, version = version + 1"
                        " WHERE workshop_id = $1 AND version = $5 RETURNING version",
                        workshop_id, cursor.seq, summary, now, cursor.version,
                    )  # fmt: skip
                if moved is None:
                    return False  # another examiner moved it first: write nothing
            rows = [(endpoint, workshop_id, event_id, body, now) for event_id, body in events for endpoint in endpoints]
            if rows:
                await conn.executemany(
                    "INSERT INTO webhook_outbox (endpoint, workshop_id, event_id, body, created_at)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (endpoint, event_id) DO NOTHING",
                    rows,
                )
            return True

        return await self._run(f"workshop {workshop_id}: record", write)

    async def heads(self, now: float, limit: int = 100) -> list[Pending]:
        async def claim(conn: Any) -> Any:
            return await conn.fetch(_CLAIM, now, now + self.lease, self.owner, limit)

        rows = await self._run("claim", claim)
        return sorted(
            (Pending(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), float(r[6])) for r in rows), key=lambda p: p.id
        )

    async def release(self, row_ids: Sequence[int]) -> None:
        async def give_back(conn: Any) -> None:
            await conn.execute(
                "UPDATE webhook_outbox SET claimed_until = 0, claimed_by = NULL WHERE id = ANY($1) AND claimed_by = $2",
                list(row_ids), self.owner,
            )  # fmt: skip

        await self._run("release", give_back)

    async def delivered(self, row_id: int) -> None:
        async def delete(conn: Any) -> None:
            await conn.execute("DELETE FROM webhook_outbox WHERE id = $1", row_id)

        await self._run("delivered", delete)

    async def retry_at(self, row_id: int, when: float) -> None:
        async def postpone(conn: Any) -> None:
            await conn.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt = $2, claimed_until = 0,"
                " claimed_by = NULL WHERE id = $1 AND claimed_by = $3",
                row_id, when, self.owner,
            )  # fmt: skip

        await self._run("retry", postpone)

    async def next_attempt(self) -> float | None:
        async def read(conn: Any) -> Any:
            return await conn.fetchval(f"SELECT MIN(GREATEST(next_attempt, claimed_until)) FROM ({_HEADS}) h")

        due = await self._run("next attempt", read)
        return None if due is None else float(due)

    async def waiting(self) -> int:
        async def count(conn: Any) -> Any:
            return await conn.fetchval("SELECT COUNT(*) FROM webhook_outbox")

        return int(await self._run("waiting", count))


if TYPE_CHECKING:  # mypy checks that PostgresOutbox implements the protocol

    def _implements(outbox: PostgresOutbox) -> WebhookOutbox:
        return outbox
