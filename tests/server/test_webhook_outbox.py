"""The webhook outbox's contract (server/webhook_outbox.py), over SQLite and PostgreSQL.

Each test gets a fresh database and a factory of outbox *instances* on it: two
instances are two processes sharing the outbox (PostgreSQL: one database each test,
dropped at the end; SQLite: one file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from tests.storage.conftest import fresh_pg_database
from vmv_sync.config import Settings
from vmv_sync.errors import ConfigError
from vmv_sync.server.webhook_outbox import Cursor, SQLiteOutbox, WebhookOutbox, open_outbox
from vmv_sync.server.webhook_outbox_pg import PostgresOutbox

pytestmark = pytest.mark.anyio

LEASE = 30.0
A, B = "https://a.example/hooks", "https://b.example/hooks"
#: a new, entered outbox instance on the test's database
Open = Callable[[], Awaitable[WebhookOutbox]]


@pytest.fixture(params=["sqlite", "postgres"])
async def outboxes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """``opened()`` gives a new, entered outbox instance on this test's database."""
    async with AsyncExitStack() as stack:
        if request.param == "postgres":
            url = await stack.enter_async_context(fresh_pg_database())
            settings = Settings(db=url, webhook_timeout=(LEASE - 5) / 3)
        else:
            settings = Settings(db=str(tmp_path / "vmv.sqlite3"), webhook_timeout=(LEASE - 5) / 3)

        async def opened() -> WebhookOutbox:
            return await stack.enter_async_context(open_outbox(settings))

        yield opened


def events(*ids: str) -> list[tuple[str, str]]:
    return [(event_id, f'{{"id":"{event_id}"}}') for event_id in ids]


async def test_events_and_cursor_are_written_together(outboxes: Open) -> None:
    box: WebhookOutbox = await outboxes()
    assert await box.cursor("w1") is None and await box.next_attempt() is None
    assert await box.record("w1", Cursor(3, {"stage": "a"}), events("e1", "e2"), [A, B])
    cursor = await box.cursor("w1")
    assert cursor is not None and (cursor.seq, cursor.summary, cursor.version) == (3, {"stage": "a"}, 1)
    assert set(await box.cursors()) == {"w1"} and await box.waiting() == 4
    # a cursor read at an older version is refused, and its events with it
    assert not await box.record("w1", Cursor(4, {"stage": "b"}, version=0), events("e3"), [A])
    assert not await box.record("w1", Cursor(4, {"stage": "b"}, version=7), events("e3"), [A])
    assert await box.waiting() == 4
    assert await box.record("w1", Cursor(4, {"stage": "b"}, version=1), events("e3"), [A])
    cursor = await box.cursor("w1")
    assert cursor is not None and (cursor.seq, cursor.summary, cursor.version) == (4, {"stage": "b"}, 2)
    # events without a cursor (an export) are only queued
    assert await box.record("w1", None, events("e4"), [A])
    assert await box.waiting() == 6


async def test_only_line_heads_are_claimed_and_in_order(outboxes: Open) -> None:
    box: WebhookOutbox = await outboxes()
    await box.record("w1", None, events("e1", "e2"), [A, B])
    await box.record("w2", None, events("f1"), [A])
    now = 1000.0
    heads = await box.heads(now)
    assert [(p.endpoint, p.workshop_id, p.event_id) for p in heads] == [
        (A, "w1", "e1"),
        (B, "w1", "e1"),
        (A, "w2", "f1"),
    ]
    assert all(p.claimed_until == now + LEASE for p in heads)
    assert await box.heads(now) == []  # all claimed; no line's second row is handed out
    await box.delivered(heads[0].id)
    await box.retry_at(heads[1].id, now + 50)  # B's w1 line waits, its second row too
    await box.release([heads[2].id])
    again = await box.heads(now + 1)
    assert [(p.endpoint, p.event_id, p.attempts) for p in again] == [(A, "e2", 0), (A, "f1", 0)]
    assert await box.next_attempt() == now + 1 + LEASE  # the earliest a head may be claimed again
    for pending in again:
        await box.delivered(pending.id)
    assert await box.next_attempt() == now + 50
    retried = await box.heads(now + 50)
    assert [(p.endpoint, p.event_id, p.attempts) for p in retried] == [(B, "e1", 1)]


async def test_a_dead_senders_claims_expire(outboxes: Open) -> None:
    first: WebhookOutbox = await outboxes()
    second: WebhookOutbox = await outboxes()
    await first.record("w1", None, events("e1", "e2"), [A])
    now = 1000.0
    claimed = await first.heads(now)  # ... and the process is killed (-9) while posting
    assert [p.event_id for p in claimed] == ["e1"]
    assert await second.heads(now + LEASE - 1) == []
    # the dead owner's leftover calls cannot undo a claim that is no longer its own
    taken = await second.heads(now + LEASE)
    assert [p.event_id for p in taken] == ["e1"]
    await first.retry_at(claimed[0].id, now)
    await first.release([claimed[0].id])
    assert await first.heads(now + LEASE + 1) == []
    await second.delivered(taken[0].id)
    assert [p.event_id for p in await first.heads(now + LEASE + 1)] == ["e2"]


async def _examine(box: WebhookOutbox, who: int, round_: int, version: int, won: list[bool]) -> None:
    cursor = Cursor(round_, {"round": round_}, version=version)
    won.append(await box.record("w1", cursor, events(f"r{round_}-{who}-a", f"r{round_}-{who}-b"), [A, B]))


async def test_two_examiners_of_one_change_write_it_once(outboxes: Open) -> None:
    boxes = [await outboxes() for _ in range(2)]
    for round_ in range(5):  # the first cursor (an insert), then updates
        read = [await box.cursor("w1") for box in boxes]
        assert read[0] == read[1]
        version = read[0].version if read[0] else 0
        won: list[bool] = []
        async with anyio.create_task_group() as tg:
            for who, box in enumerate(boxes):
                tg.start_soon(_examine, box, who, round_, version, won)
        assert sorted(won) == [False, True]
        assert await boxes[0].waiting() == 4 * (round_ + 1)  # the winner's events only
        after = await boxes[1].cursor("w1")
        assert after is not None and (after.version, after.seq) == (version + 1, round_)


async def test_racing_senders_claim_each_head_once(outboxes: Open) -> None:
    boxes: list[WebhookOutbox] = [await outboxes() for _ in range(3)]
    for n in range(20):
        await boxes[0].record(f"w{n}", None, events(f"e{n}-1", f"e{n}-2"), [A, B])
    claims: list[list[int]] = [[] for _ in boxes]

    async def sender(index: int) -> None:
        for _ in range(4):
            claims[index].extend(p.id for p in await boxes[index].heads(1000.0, limit=7))

    async with anyio.create_task_group() as tg:
        for index in range(len(boxes)):
            tg.start_soon(sender, index)
    every = [row for each in claims for row in each]
    assert len(every) == len(set(every)) == 40  # each of the 40 line heads, by one sender
    assert await boxes[0].heads(1000.0) == []


def test_the_database_picks_the_backend(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "v.sqlite3"))
    assert isinstance(open_outbox(settings), SQLiteOutbox)
    pg = open_outbox(settings.with_overrides(db="postgresql://u@127.0.0.1:5432/x", webhook_timeout=2.0))
    assert isinstance(pg, PostgresOutbox) and pg.lease == 11.0
    with pytest.raises(ConfigError, match="need the SQLite or PostgreSQL store"):
        open_outbox(settings.with_overrides(db="memory:"))


async def test_an_older_sqlite_outbox_gains_claims_and_versions(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the tables as the first release made them
        conn.executescript(
            "CREATE TABLE webhook_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL,"
            " workshop_id TEXT NOT NULL, event_id TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, UNIQUE (endpoint, event_id));"
            "CREATE TABLE webhook_cursor (workshop_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, summary TEXT NOT NULL,"
            " updated_at REAL NOT NULL);"
            "INSERT INTO webhook_outbox (endpoint, workshop_id, event_id, body, created_at) VALUES ('u', 'w1', 'e1', '{}', 1);"
            "INSERT INTO webhook_cursor VALUES ('w1', 5, '{\"stage\": \"a\"}', 1);"
        )
    conn.close()
    async with SQLiteOutbox(path, lease=LEASE) as box:
        cursor = await box.cursor("w1")
        assert cursor is not None and (cursor.seq, cursor.version) == (5, 1)
        assert [p.event_id for p in await box.heads(1000.0)] == ["e1"]
        assert await box.record("w1", Cursor(6, {"stage": "b"}, version=1), events("e2"), ["u"])
