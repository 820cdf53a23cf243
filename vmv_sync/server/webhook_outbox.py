"""The webhook outbox: events waiting for delivery, durable in the server's SQLite file.

Tables of their own (like the access registry's), beside the store's, and not in
``storage/``: the store's schema and migrations belong to the store. One row per
(event, endpoint), deleted once the endpoint answered 2xx; a cursor per workshop
records what the watcher has already turned into events (the update sequence and
the summary it compared against), written in the same transaction as the events it
produced, so a crash either keeps both or neither: after a restart nothing is lost
and nothing is produced twice from the same change.

Every call opens a short connection in a worker thread: events are few (a handful
per workshop per minute), so this never competes with the store's writer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio

__all__ = ("Outbox", "Pending", "Cursor")

T = TypeVar("T")

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


@dataclass(frozen=True)
class Pending:
    """One event for one endpoint, next in its workshop's line."""

    id: int
    endpoint: str
    workshop_id: str
    event_id: str
    body: str
    attempts: int


@dataclass(frozen=True)
class Cursor:
    """What the watcher last turned into events for a workshop."""

    seq: int
    summary: dict[str, Any]


class Outbox:
    """The outbox and cursor tables in the SQLite file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = anyio.Lock()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                conn.executescript(_SCHEMA)
                with conn:
                    return fn(conn)
            finally:
                conn.close()

        async with self._lock:
            return await anyio.to_thread.run_sync(run)

    async def cursor(self, workshop_id: str) -> Cursor | None:
        row = await self._run(
            lambda c: c.execute("SELECT seq, summary FROM webhook_cursor WHERE workshop_id = ?", (workshop_id,)).fetchone()
        )
        return Cursor(row[0], json.loads(row[1])) if row else None

    async def cursors(self) -> dict[str, float]:
        """When each workshop's cursor was last written (wall clock)."""
        rows = await self._run(lambda c: c.execute("SELECT workshop_id, updated_at FROM webhook_cursor").fetchall())
        return {wid: at for wid, at in rows}

    async def record(
        self, workshop_id: str, cursor: Cursor | None, events: Sequence[tuple[str, str]], endpoints: Sequence[str]
    ) -> None:
        """Queue ``events`` ((event id, JSON body), in order) for every endpoint and, if
        given, move the workshop's cursor, in one transaction."""
        now = time.time()

        def write(c: sqlite3.Connection) -> None:
            for event_id, body in events:
                for endpoint in endpoints:
                    c.execute(
                        "INSERT OR IGNORE INTO webhook_outbox (endpoint, workshop_id, event_id, body, created_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (endpoint, workshop_id, event_id, body, now),
                    )
            if cursor is not None:
                c.execute(
                    "INSERT INTO webhook_cursor VALUES (?, ?, ?, ?) ON CONFLICT (workshop_id) DO UPDATE"
                    " SET seq = excluded.seq, summary = excluded.summary, updated_at = excluded.updated_at",
                    (workshop_id, cursor.seq, json.dumps(cursor.summary, sort_keys=True), now),
                )

        await self._run(write)

    async def heads(self, now: float) -> list[Pending]:
        """The oldest waiting event of every (endpoint, workshop) line whose retry time has come.

        Only a line's head is handed out, so a workshop's events reach an endpoint in
        the order they were produced, even across retries.
        """
        rows = await self._run(
            lambda c: c.execute(
                "SELECT o.id, o.endpoint, o.workshop_id, o.event_id, o.body, o.attempts, o.next_attempt"
                " FROM webhook_outbox o JOIN (SELECT MIN(id) AS id FROM webhook_outbox GROUP BY endpoint, workshop_id) h"
                " ON o.id = h.id ORDER BY o.id"
            ).fetchall()
        )
        return [Pending(*row[:6]) for row in rows if row[6] <= now]

    async def next_attempt(self) -> float | None:
        """When the earliest waiting event may be tried (None: the outbox is empty)."""
        row = await self._run(lambda c: c.execute("SELECT MIN(next_attempt) FROM webhook_outbox").fetchone())
        return row[0] if row and row[0] is not None else None

    async def delivered(self, row_id: int) -> None:
        await self._run(lambda c: c.execute("DELETE FROM webhook_outbox WHERE id = ?", (row_id,)))

    async def retry_at(self, row_id: int, when: float) -> None:
        await self._run(
            lambda c: c.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt = ? WHERE id = ?", (when, row_id)
            )
        )

    async def waiting(self) -> int:
        row = await self._run(lambda c: c.execute("SELECT COUNT(*) FROM webhook_outbox").fetchone())
        return int(row[0])
