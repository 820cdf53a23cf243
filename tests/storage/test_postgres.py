"""PostgreSQL-only tests: grouping, lost connections, migrations by two processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import asyncpg
import pytest

from vmv_sync.errors import StorageError
from vmv_sync.storage import PostgresStore, StoredDoc
from vmv_sync.storage.postgres import SCHEMA_VERSION

pytestmark = pytest.mark.anyio


async def test_concurrent_appends_are_grouped_into_few_commits(pg_database: str) -> None:
    async with PostgresStore(pg_database) as store:

        async def room(task: int) -> None:
            for i in range(10):
                await store.append(f"w{task % 5}", [f"{task}:{i}".encode()], claims={task: f"p{task}"})

        async with anyio.create_task_group() as tg:
            for task in range(40):
                tg.start_soon(room, task)
        assert store.appends == 400 and store.commits < 400 and store.max_batch > 1
        for w in range(5):
            _, updates = await store.history(f"w{w}")
            assert [u.seq for u in updates] == list(range(1, 81))
            assert dict((await store.load(f"w{w}")).client_ids) == {t: f"p{t}" for t in range(w, 40, 5)}


async def test_each_batch_is_one_statement_on_the_writer(pg_database: str) -> None:
    """Group commit costs one round trip per batch: one (prepared) statement, whatever it holds."""
    async with PostgresStore(pg_database) as store:
        await store.append("w", [b"warm-up"])  # the first call also prepares the statement
        statements: list[str] = []
        store._writer.add_query_logger(lambda record: statements.append(record.query))
        commits = store.commits

        async def room(task: int) -> None:
            for i in range(5):
                await store.append(f"w{task % 3}", [b"%d:%d" % (task, i)] * 2, claims={task: "p"})

        async with anyio.create_task_group() as tg:
            for task in range(30):
                tg.start_soon(room, task)
        batches = store.commits - commits
        assert 1 < batches < 150  # grouped ...
        assert len(statements) == batches  # ... and each batch was ONE statement
        assert all("vmv_commit_batch" in q for q in statements)


async def test_the_store_recovers_when_its_connections_are_killed(pg_database: str) -> None:
    """A PostgreSQL restart or a killed backend: visible failures, then the store goes on."""
    async with PostgresStore(pg_database) as store:
        await store.append("w", [b"a"])
        await store.load("w")
        admin = await asyncpg.connect(pg_database)
        try:
            killed = await admin.fetchval(
                """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()"""
            )
        finally:
            await admin.close()
        assert killed >= 2  # the writer and at least one pooled connection
        appended: list[int] = []
        for _ in range(3):  # the first call may meet the dead connection; it must say so
            try:
                appended.append(await store.append("w", [b"b"]))
                break
            except StorageError:
                continue
        assert appended == [2]
        loaded = None
        for _ in range(3):
            try:
                loaded = await store.load("w")
                break
            except StorageError:
                continue
        assert loaded == StoredDoc(None, (b"a", b"b"), 2)


async def test_two_processes_starting_at_once_migrate_once(pg_database: str) -> None:
    opened: list[int] = []

    async def start(n: int) -> None:
        async with PostgresStore(pg_database) as store:
            opened.append(await store.append("w", [b"%d" % n]))

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(start, n)
    assert sorted(opened) == [1, 2, 3]
    conn = await asyncpg.connect(pg_database)
    try:
        assert await conn.fetch("SELECT version FROM vmv_schema") == [(SCHEMA_VERSION,)]
    finally:
        await conn.close()


async def test_a_newer_schema_is_refused(pg_database: str) -> None:
    async with PostgresStore(pg_database):
        pass
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("UPDATE vmv_schema SET version = 99")
    finally:
        await conn.close()
    with pytest.raises(StorageError, match="newer"):
        async with PostgresStore(pg_database):
            pass


async def test_an_unreachable_server_fails_to_open_without_naming_the_password() -> None:
    with pytest.raises(StorageError, match="cannot open") as caught:
        async with PostgresStore("postgresql://vmv:s3cret@127.0.0.1:1/vmv"):
            pass
    assert "s3cret" not in str(caught.value)


async def test_closed_store_refuses() -> None:
    store = PostgresStore("postgresql://127.0.0.1:1/vmv")
    with pytest.raises(StorageError, match="new"):
        await store.append("w", [b"x"])


KILL_SCRIPT = """
import sys, anyio
from vmv_sync.storage import PostgresStore

async def main(url):
    async with PostgresStore(url) as store:
        async def writer(t):
            i = 0
            while True:
                data = f"{t}:{i}"
                seq = await store.append("w", [data.encode()], claims={t: f"p{t}"} if i == 0 else None)
                print(seq, data, flush=True)
                i += 1
        async with anyio.create_task_group() as tg:
            for t in range(8):
                tg.start_soon(writer, t)

anyio.run(main, sys.argv[1])
"""


async def test_acknowledged_appends_survive_kill_9(pg_database: str) -> None:
    """Every seq a process printed after ``append`` returned is in the database after SIGKILL."""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, pg_database],
        stdout=subprocess.PIPE, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    acknowledged: dict[int, str] = {}
    try:
        for line in proc.stdout:  # bounded: we stop reading after 400 acknowledgements
            seq, data = line.split()
            acknowledged[int(seq)] = data
            if len(acknowledged) >= 400:
                break
    finally:
        proc.kill()  # SIGKILL mid-stream: no flush, no close
        rest, _ = proc.communicate(timeout=30)
    for line in rest.splitlines():
        parts = line.split()
        if len(parts) == 2:
            acknowledged[int(parts[0])] = parts[1]
    assert proc.returncode == -9 and len(acknowledged) >= 400
    async with PostgresStore(pg_database) as store:
        _, updates = await store.history("w")
        claims = dict((await store.load("w")).client_ids)
    stored = {u.seq: u.update.decode() for u in updates}
    assert {s: d for s, d in acknowledged.items() if stored.get(s) != d} == {}
    assert [u.seq for u in updates] == list(range(1, len(updates) + 1))  # no gap, no reuse
    assert claims == {t: f"p{t}" for t in range(8)}
