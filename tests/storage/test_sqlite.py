"""SQLite-only tests: group commit, failures, schema, durability (kill -9), backup."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import vmv_sync.storage as storage_pkg
from vmv_sync.errors import ConfigError, StorageError
from vmv_sync.storage import MemoryStore, SQLiteStore, StoredDoc, open_store

from .helpers import FakeClock

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


# -- SQLite: group commit ----------------------------------------------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "vmv.sqlite3", clock=clock) as made:
        yield made


async def test_concurrent_appends_are_grouped(sqlite_store: SQLiteStore) -> None:
    results: dict[int, list[int]] = {}

    async def room(task: int) -> None:
        workshop = f"w{task % 5}"
        results[task] = [
            await sqlite_store.append(workshop, [f"{task}:{i}".encode()]) for i in range(10)
        ]

    async with anyio.create_task_group() as tg:
        for task in range(50):
            tg.start_soon(room, task)
    assert sqlite_store.appends == 500
    assert sqlite_store.commits < 500
    assert sqlite_store.max_batch > 1
    for w in range(5):
        _, updates = await sqlite_store.history(f"w{w}")
        assert [u.seq for u in updates] == list(range(1, 101))
        by_seq = {u.seq: u.update for u in updates}
        for task in range(w, 50, 5):
            # every caller got the seq of its own update, in its own order
            assert [by_seq[s] for s in results[task]] == [f"{task}:{i}".encode() for i in range(10)]


async def test_failing_commit_raises_to_every_caller(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.append("w", [b"before"])
    with sqlite3.connect(sqlite_store.path) as other:  # simulate a failing disk write
        other.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON updates "
            "BEGIN SELECT RAISE(ABORT, 'simulated I/O failure'); END"
        )
    errors: list[BaseException] = []

    async def caller(i: int) -> None:
        try:
            await sqlite_store.append(f"w{i % 3}", [b"lost"])
        except StorageError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(caller, i)
    assert len(errors) == 20
    assert "simulated I/O failure" in str(errors[0])
    with sqlite3.connect(sqlite_store.path) as other:
        other.execute("DROP TRIGGER fail")
    # nothing of the failed batches is stored and the store keeps working
    assert await sqlite_store.append("w", [b"after"]) == 2
    assert await sqlite_store.load("w") == StoredDoc(None, (b"before", b"after"), 2)
    assert await sqlite_store.load("w1") == StoredDoc(None, (), 0)


async def test_closed_connection_raises_storage_error(sqlite_store: SQLiteStore) -> None:
    assert sqlite_store._writer is not None
    sqlite_store._writer.close()
    with pytest.raises(StorageError):
        await sqlite_store.append("w", [b"x"])
    with pytest.raises(StorageError):
        await sqlite_store.compact("w", b"x", 0)


async def test_aclose_commits_pending_and_then_refuses(tmp_path: Path) -> None:
    path = tmp_path / "vmv.sqlite3"
    got: list[int] = []
    async with SQLiteStore(path) as store:
        async def caller(i: int) -> None:
            got.append(await store.append("w", [b"%d" % i]))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(caller, i)
            await anyio.lowlevel.checkpoint()
            await store.aclose()  # queued appends still commit
    assert sorted(got) == list(range(1, 11))
    with pytest.raises(StorageError):
        await store.append("w", [b"late"])
    async with SQLiteStore(path) as again:
        assert (await again.load("w")).last_seq == 10


# -- SQLite: schema ----------------------------------------------------------------


async def test_schema_version_and_pragmas(sqlite_store: SQLiteStore) -> None:
    with sqlite3.connect(sqlite_store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == storage_pkg.sqlite.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sqlite_store._writer is not None
    assert sqlite_store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StorageError, match="newer"):
        async with SQLiteStore(path):
            pass


def test_memory_path_is_refused() -> None:
    with pytest.raises(ValueError):
        SQLiteStore(":memory:")


async def test_open_store(tmp_path: Path) -> None:
    assert isinstance(open_store("memory:"), MemoryStore)
    made = open_store(f"sqlite:///{tmp_path}/a.sqlite3")
    assert isinstance(made, SQLiteStore) and made.path == tmp_path / "a.sqlite3"
    with pytest.raises(ConfigError):
        open_store("redis://x")


def test_public_names() -> None:
    exported = {
        name
        for name, value in vars(storage_pkg).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    # PostgresStore is the one name loaded on first use (it needs asyncpg)
    assert set(storage_pkg.__all__) - exported == {"PostgresStore"}
    assert exported <= set(storage_pkg.__all__)
    assert all(getattr(storage_pkg, name) is not None for name in storage_pkg.__all__)


# -- SQLite: durability, backup ------------------------------------------------------


KILL_SCRIPT = """
import sys, anyio
from vmv_sync.storage import SQLiteStore

async def main(path):
    async with SQLiteStore(path) as store:
        async def writer(t):
            i = 0
            while True:
                data = f"{t}:{i}"
                seq = await store.append("w", [data.encode()])
                print(seq, data, flush=True)
                i += 1
        async with anyio.create_task_group() as tg:
            for t in range(8):
                tg.start_soon(writer, t)

anyio.run(main, sys.argv[1])
"""


@pytest.mark.anyio(False)
def test_appends_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "vmv.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    acknowledged: dict[int, str] = {}
    try:
        for line in proc.stdout:
            seq, data = line.split()
            acknowledged[int(seq)] = data
            if len(acknowledged) >= 400:
                break
    finally:
        proc.kill()  # SIGKILL: no cleanup, no checkpoint, mid-stream
        rest, _ = proc.communicate(timeout=30)
    for line in rest.splitlines():
        parts = line.split()
        if len(parts) == 2:
            acknowledged[int(parts[0])] = parts[1]
    assert proc.returncode == -9
    assert len(acknowledged) >= 400

    async def check() -> None:
        async with SQLiteStore(path) as store:
            _, updates = await store.history("w")
        stored = {u.seq: u.update.decode() for u in updates}
        missing = {s: d for s, d in acknowledged.items() if stored.get(s) != d}
        assert missing == {}
        assert [u.seq for u in updates] == list(range(1, len(updates) + 1))

    anyio.run(check)


async def test_backup_during_writes(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    committed: list[tuple[int, bytes]] = []
    stop = anyio.Event()

    async def writer(t: int) -> None:
        i = 0
        while not stop.is_set():
            data = f"{t}:{i}".encode()
            committed.append((await sqlite_store.append(f"w{t % 2}", [data]), data))
            i += 1

    async with anyio.create_task_group() as tg:
        for t in range(6):
            tg.start_soon(writer, t)
        while len(committed) < 300:
            await anyio.sleep(0.001)
        before_backup = list(committed)
        await sqlite_store.backup(tmp_path / "backups" / "copy.sqlite3")
        stop.set()
    assert len(committed) > len(before_backup)  # writes went on around the backup

    restored = tmp_path / "restored.sqlite3"
    await SQLiteStore.restore(tmp_path / "backups" / "copy.sqlite3", restored)
    with pytest.raises(StorageError, match="exists"):
        await SQLiteStore.restore(tmp_path / "backups" / "copy.sqlite3", restored)
    async with SQLiteStore(restored) as store:
        rows: set[bytes] = set()
        for w in ("w0", "w1"):
            _, updates = await store.history(w)
            assert [u.seq for u in updates] == list(range(1, len(updates) + 1))
            rows |= {u.update for u in updates}
    assert {data for _, data in before_backup} <= rows


async def test_restore_refuses_foreign_file(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StorageError, match="not a vmv-sync database"):
        await SQLiteStore.restore(foreign, tmp_path / "dest.sqlite3")
    assert not (tmp_path / "dest.sqlite3").exists()
