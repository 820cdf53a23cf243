"""The webhook outbox: events waiting for delivery, and what the watcher already reported.

:class:`WebhookOutbox` is the interface :mod:`.webhooks` uses; :func:`open_outbox`
picks its backend from the configured database: :class:`SQLiteOutbox` (here) keeps
its tables in the server's SQLite file, :class:`~.webhook_outbox_pg.PostgresOutbox`
in the PostgreSQL database every process of a cluster shares. Tables of their own
(like the access registry's), beside the store's, and not in ``storage/``: the
store's schema and migrations belong to the store.

The rules both backends keep, so that any number of processes may share one outbox:

- One row per (event, endpoint), deleted once the endpoint answered 2xx.
- A cursor per workshop records what the watcher has already turned into events (the
  update sequence and the summary it compared against) and a ``version``. Events and
  the new cursor are written in one transaction, **only if** the cursor's version is
  still the one the watcher read (compare-and-set): of two examiners of one change,
  one writes and the other is told it lost (``record`` returns False) and writes
  nothing. A crash keeps both or neither.
- A sender *claims* the rows it is about to post (``heads``): a claim lasts ``lease``
  seconds and only the head of each (endpoint, workshop) line, unclaimed and due, is
  handed out, so a line's events never overtake each other and no row is posted by
  two senders at once. A sender that dies holding claims (kill -9) delays its rows by
  the lease, after which anyone may claim them again (at least once).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio

from ..config import Settings
from ..errors import ConfigError, StorageError
from ..storage.url import postgres_url

__all__ = ("WebhookOutbox", "SQLiteOutbox", "Outbox", "Pending", "Cursor", "open_outbox")

T = TypeVar("T")


@dataclass(frozen=True)
class Pending:
    """One event for one endpoint, next in its workshop's line, claimed until ``claimed_until``."""

    id: int
    endpoint: str
    workshop_id: str
    event_id: str
    body: str
    attempts: int
    claimed_until: float = 0.0


@dataclass(frozen=True)
class Cursor:
    """What the watcher last turned into events for a workshop.

    ``version`` counts the cursor's writes (0: never written). A cursor passed to
    :meth:`WebhookOutbox.record` carries the version its examiner *read*: it is written
    (as ``version + 1``) only if the stored one is still that.
    """

    seq: int
    summary: dict[str, Any]
    version: int = 0
    #: wall-clock time of the write that stored it (0: not stored)
    written_at: float = 0.0


class WebhookOutbox(Protocol):
    """Where webhook events wait (see the module docstring for the rules)."""

    #: how often the watcher should re-examine workshops active since their cursor, in
    #: case the process that committed a change died before examining it (None: only at
    #: start, for an outbox no other process writes)
    sweep_seconds: float | None
    #: longest a sender may sleep without looking (another process may have queued rows)
    poll_seconds: float

    async def __aenter__(self) -> WebhookOutbox: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def cursor(self, workshop_id: str) -> Cursor | None:
        """The workshop's cursor, None if never written."""
        ...

    async def cursors(self) -> dict[str, float]:
        """When each workshop's cursor was last written (wall clock)."""
        ...

    async def record(
        self, workshop_id: str, cursor: Cursor | None, events: Sequence[tuple[str, str]], endpoints: Sequence[str]
    ) -> bool:
        """Queue ``events`` ((event id, JSON body), in order) for every endpoint and, if
        ``cursor`` is given, move the workshop's cursor to it, in one transaction, only
        if the stored cursor's version is ``cursor.version``. False: it was not (another
        examiner won); nothing was written."""
        ...

    async def heads(self, now: float, limit: int = 100) -> list[Pending]:
        """Claim (for ``lease`` seconds) and return, oldest first, up to ``limit`` line
        heads that are due (``next_attempt <= now``) and not claimed by anyone."""
        ...

    async def release(self, row_ids: Sequence[int]) -> None:
        """Give back claims of this outbox without counting an attempt."""
        ...

    async def delivered(self, row_id: int) -> None:
        """The endpoint accepted the row: delete it."""
        ...

    async def retry_at(self, row_id: int, when: float) -> None:
        """The attempt failed: count it, try again at ``when``, drop this outbox's claim."""
        ...

    async def next_attempt(self) -> float | None:
        """When a line head may next be claimed (None: the outbox is empty)."""
        ...

    async def waiting(self) -> int:
        """Rows waiting (every endpoint's)."""
        ...


def claim_lease(settings: Settings) -> float:
    """How long a claim lasts: room for one post (connect, send, read, each up to the
    timeout) and a margin for clocks that differ a little between hosts."""
    return 3 * settings.webhook_timeout + 5.0


def open_outbox(settings: Settings) -> WebhookOutbox:
    """The outbox (not yet entered) in the configured database: its SQLite file or its
    PostgreSQL database; any other store has nowhere durable to keep it."""
    lease = claim_lease(settings)
    url = postgres_url(settings.db)
    if url is not None:
        from .webhook_outbox_pg import PostgresOutbox  # asyncpg only when asked for

        return PostgresOutbox(url, lease=lease)
    path = settings.sqlite_path
    if path is None:
        raise ConfigError("webhooks keep their outbox in the database: they need the SQLite or PostgreSQL store")
    return SQLiteOutbox(path, lease=lease)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    workshop_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    UNIQUE (endpoint, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_outbox_queue ON webhook_outbox (endpoint, workshop_id, id);
CREATE TABLE IF NOT EXISTS webhook_cursor (
    workshop_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    summary TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

#: columns added after the first release (existing files get them with these defaults)
_ADDED = (
    ("webhook_outbox", "claimed_until", "REAL NOT NULL DEFAULT 0"),
    ("webhook_outbox", "claimed_by", "TEXT"),
    ("webhook_cursor", "version", "INTEGER NOT NULL DEFAULT 1"),
)

#: the head (oldest row) of every (endpoint, workshop) line
_HEADS = "SELECT MIN(id) FROM webhook_outbox GROUP BY endpoint, workshop_id"


class SQLiteOutbox:
    """The outbox and cursor tables in the SQLite file at ``path``.

    Every call opens a short connection in a worker thread and one write transaction
    (``BEGIN IMMEDIATE``): events are few (a handful per workshop per minute), so this
    never competes with the store's writer, and processes sharing the file serialize.
    """

    sweep_seconds: float | None = None
    poll_seconds = 60.0

    def __init__(self, path: Path, *, lease: float = 35.0) -> None:
        self.path = Path(path)
        self.lease = lease
        #: whose claims are whose (one id per outbox instance)
        self.owner = uuid.uuid4().hex
        self._lock = anyio.Lock()
        self._ready = False

    async def __aenter__(self) -> SQLiteOutbox:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """The tables, and the columns an older file lacks (once per instance, before any transaction)."""
        conn.executescript(_SCHEMA)
        for table, column, decl in _ADDED:
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                try:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
                except sqlite3.OperationalError as exc:  # another process added it just now
                    if "duplicate column" not in str(exc):
                        raise
        self._ready = True

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                if not self._ready:
                    self._prepare(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            finally:
                conn.close()

        async with self._lock:
            try:
                return await anyio.to_thread.run_sync(run)
            except sqlite3.Error as exc:
                raise StorageError(f"webhook outbox in {self.path}: {exc}") from exc

    async def cursor(self, workshop_id: str) -> Cursor | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT seq, summary, version, updated_at FROM webhook_cursor WHERE workshop_id = ?", (workshop_id,)
            ).fetchone()
        )
        return Cursor(row[0], json.loads(row[1]), row[2], row[3]) if row else None

    async def cursors(self) -> dict[str, float]:
        rows = await self._run(lambda c: c.execute("SELECT workshop_id, updated_at FROM webhook_cursor").fetchall())
        return {wid: at for wid, at in rows}

    async def record(
        self, workshop_id: str, cursor: Cursor | None, events: Sequence[tuple[str, str]], endpoints: Sequence[str]
    ) -> bool:
        now = time.time()

        def write(c: sqlite3.Connection) -> bool:
            if cursor is not None:
                summary = json.dumps(cursor.summary, sort_keys=True)
                if cursor.version == 0:
                    moved = c.execute(
                        "INSERT INTO webhook_cursor (workshop_id, seq, summary, updated_at, version)"
                        " VALUES (?, ?, ?, ?, 1) ON CONFLICT (workshop_id) DO NOTHING",
                        (workshop_id, cursor.seq, summary, now),
                    )
                else:
                    moved = c.execute(
                        "UPDATE webhook_cursor SET seq = ?, summary = ?, updated_at = ?, version = version + 1"
                        " WHERE workshop_id = ? AND version = ?",
                        (cursor.seq, summary, now, workshop_id, cursor.version),
                    )
                if moved.rowcount != 1:
                    return False  # another examiner moved it first: write nothing
            c.executemany(
                "INSERT OR IGNORE INTO webhook_outbox (endpoint, workshop_id, event_id, body, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(endpoint, workshop_id, event_id, body, now) for event_id, body in events for endpoint in endpoints],
            )
            return True

        return await self._run(write)

    async def heads(self, now: float, limit: int = 100) -> list[Pending]:
        def claim(c: sqlite3.Connection) -> list[Pending]:
            rows = c.execute(
                "SELECT id, endpoint, workshop_id, event_id, body, attempts FROM webhook_outbox"
                f" WHERE id IN ({_HEADS}) AND next_attempt <= ? AND claimed_until <= ? ORDER BY id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            until = now + self.lease
            c.executemany(
                "UPDATE webhook_outbox SET claimed_until = ?, claimed_by = ? WHERE id = ?",
                [(until, self.owner, row[0]) for row in rows],
            )
            return [Pending(r[0], r[1], r[2], r[3], r[4], r[5], until) for r in rows]

        return await self._run(claim)

    async def release(self, row_ids: Sequence[int]) -> None:
        await self._run(
            lambda c: c.executemany(
                "UPDATE webhook_outbox SET claimed_until = 0, claimed_by = NULL WHERE id = ? AND claimed_by = ?",
                [(row_id, self.owner) for row_id in row_ids],
            )
        )

    async def delivered(self, row_id: int) -> None:
        await self._run(lambda c: c.execute("DELETE FROM webhook_outbox WHERE id = ?", (row_id,)))

    async def retry_at(self, row_id: int, when: float) -> None:
        await self._run(
            lambda c: c.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt = ?, claimed_until = 0,"
                " claimed_by = NULL WHERE id = ? AND claimed_by = ?",
                (when, row_id, self.owner),
            )
        )

    async def next_attempt(self) -> float | None:
        row = await self._run(
            lambda c: c.execute(
                f"SELECT MIN(MAX(next_attempt, claimed_until)) FROM webhook_outbox WHERE id IN ({_HEADS})"
            ).fetchone()
        )
        return float(row[0]) if row and row[0] is not None else None

    async def waiting(self) -> int:
        row = await self._run(lambda c: c.execute("SELECT COUNT(*) FROM webhook_outbox").fetchone())
        return int(row[0])


#: the name this class had when SQLite was the only backend
Outbox = SQLiteOutbox

if TYPE_CHECKING:  # mypy checks that SQLiteOutbox implements the protocol

    def _implements(outbox: SQLiteOutbox) -> WebhookOutbox:
        return outbox
