"""The storage contract suite, run over every Store, plus SQLite-only durability tests.

Compaction tests rebuild real pycrdt documents and compare their CONTENT: a store
that replaced history with an empty update would keep the row counts right and lose
the workshop (the pycrdt-store squash bug).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pycrdt import Array, Doc, Map, Text

import vmv_sync.storage as storage_pkg
from vmv_sync.errors import ConfigError, StorageError
from vmv_sync.storage import (
    MemoryStore,
    SQLiteStore,
    Store,
    StoredDoc,
    open_store,
)

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A wall clock the test moves by hand, forwards or backwards."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Any]:
    made: Any
    if request.param == "sqlite":
        made = SQLiteStore(tmp_path / "sub" / "vmv.sqlite3", clock=clock)
    else:
        made = MemoryStore(clock=clock)
    async with made:
        yield made


# -- pycrdt helpers ----------------------------------------------------------------


class Editor:
    """A pycrdt Doc whose every transaction's update is collected, like a room's doc."""

    def __init__(self, seed: int = 0) -> None:
        self.doc: Doc = Doc()
        self.doc["m"] = Map()
        self.doc["a"] = Array()
        self.doc["t"] = Text()
        self.pending: list[bytes] = []
        self._sub = self.doc.observe(lambda event: self.pending.append(event.update))
        self.rng = random.Random(seed)

    def edit(self) -> list[bytes]:
        """One random Map/Array/Text edit; return the update(s) it produced."""
        m = self.doc.get("m", type=Map)
        a = self.doc.get("a", type=Array)
        t = self.doc.get("t", type=Text)
        r = self.rng.random()
        if r < 0.3:
            m[f"k{self.rng.randrange(20)}"] = self.rng.randrange(1000)
        elif r < 0.5:
            a.insert(self.rng.randrange(len(a) + 1), self.rng.randrange(1000))
        elif r < 0.6 and len(a):
            del a[self.rng.randrange(len(a))]
        elif r < 0.9 or not len(t):
            t.insert(self.rng.randrange(len(t) + 1), self.rng.choice(["a", "bc", "d e", "xyz"]))
        else:
            start = self.rng.randrange(len(t))
            del t[start : start + 1]
        out, self.pending = self.pending, []
        return out


def content(doc: Doc) -> dict[str, Any]:
    return {
        "m": doc.get("m", type=Map).to_py(),
        "a": doc.get("a", type=Array).to_py(),
        "t": str(doc.get("t", type=Text)),
    }


def rebuild(snapshot: bytes | None, updates: Any) -> Doc:
    doc = Doc()
    doc["m"] = Map()
    doc["a"] = Array()
    doc["t"] = Text()
    if snapshot is not None:
        doc.apply_update(snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc


def reload(stored: StoredDoc) -> dict[str, Any]:
    return content(rebuild(stored.snapshot, stored.updates))


# -- contract: append and load ------------------------------------------------------


async def test_empty_workshop_loads_empty(store: Store) -> None:
    assert await store.load("nobody") == StoredDoc(None, (), 0)
    assert await store.history("nobody") == (None, [])
    assert await store.stats("nobody") == (0, 0)
    assert await store.list_workshops() == []


async def test_append_then_load_in_order(store: Store) -> None:
    assert await store.append("w1", [b"a", b"b"]) == 2
    assert await store.append("w2", [b"x"]) == 1
    assert await store.append("w1", [b"c"]) == 3
    assert await store.load("w1") == StoredDoc(None, (b"a", b"b", b"c"), 3)
    assert await store.load("w2") == StoredDoc(None, (b"x",), 1)
    assert [w.workshop_id for w in await store.list_workshops()] == ["w1", "w2"]


async def test_append_rejects_non_bytes(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.append("w", b"not-a-list")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await store.append("w", ["text"])  # type: ignore[list-item]
    assert await store.load("w") == StoredDoc(None, (), 0)


async def test_empty_append_returns_current_seq(store: Store) -> None:
    await store.append("w", [b"a", b"b"])
    assert await store.append("w", []) == 2


async def test_seq_strictly_increases_across_compaction(store: Store) -> None:
    seqs = [await store.append("w", [b"u%d" % i]) for i in range(5)]
    await store.compact("w", b"S5", 5)
    seqs += [await store.append("w", [b"u%d" % i]) for i in range(5, 8)]
    await store.compact("w", b"S8", 8)
    seqs.append(await store.append("w", [b"u8"]))
    assert seqs == list(range(1, 10))
    assert await store.load("w") == StoredDoc(b"S8", (b"u8",), 9)
    _, kept = await store.history("w")
    assert [u.seq for u in kept] == [9]


async def test_stale_or_future_compaction(store: Store) -> None:
    for i in range(4):
        await store.append("w", [b"u%d" % i])
    await store.compact("w", b"S3", 3)
    await store.compact("w", b"OLD", 2)  # older than the stored snapshot: ignored
    assert await store.load("w") == StoredDoc(b"S3", (b"u3",), 4)
    with pytest.raises(ValueError):
        await store.compact("w", b"FUTURE", 5)
    with pytest.raises(ValueError):
        await store.compact("nobody", b"X", 1)


async def test_stats_list_and_delete(store: Store, clock: FakeClock) -> None:
    await store.append("w", [b"aa", b"bbb"])
    clock.now += 10
    await store.append("w", [b"c"])
    assert await store.stats("w") == (3, 6)
    await store.compact("w", b"SNAP", 2)
    assert await store.stats("w") == (1, 1)
    (info,) = await store.list_workshops()
    assert (info.workshop_id, info.updates, info.bytes, info.snapshot_bytes) == ("w", 1, 1, 4)
    assert info.last_activity == clock.now
    await store.delete("w")
    assert await store.load("w") == StoredDoc(None, (), 0)
    assert await store.list_workshops() == []
    assert await store.append("w", [b"again"]) == 1  # a deleted workshop starts afresh


async def test_clock_stepping_backwards_hides_nothing(store: Store, clock: FakeClock) -> None:
    editor = Editor(seed=1)
    for step in range(60):
        # the wall clock jumps back an hour every 20 updates (NTP, VM restore...)
        clock.now += -3600 if step % 20 == 19 else 1
        for update in editor.edit():
            await store.append("w", [update])
    stored = await store.load("w")
    assert reload(stored) == content(editor.doc)
    _, updates = await store.history("w")
    assert [u.seq for u in updates] == list(range(1, stored.last_seq + 1))
    # a history window computed from a clock that went back keeps more, never less
    await store.compact("w", editor.doc.get_update(), stored.last_seq, keep_history_seconds=30)
    assert reload(await store.load("w")) == content(editor.doc)
    base, kept = await store.history("w")
    assert content(rebuild(base, [u.update for u in kept])) == content(editor.doc)


# -- contract: compaction with real documents -------------------------------------


async def test_compaction_keeps_content(store: Store) -> None:
    editor = Editor(seed=2)
    last = 0
    for _ in range(300):
        for update in editor.edit():
            last = await store.append("w", [update])
    before = content(editor.doc)
    assert before["t"] and before["m"]
    await store.compact("w", editor.doc.get_update(), last)
    after_compaction = await store.load("w")
    assert after_compaction.updates == ()
    assert reload(after_compaction) == before
    # edits after the snapshot are applied on top of it
    for _ in range(50):
        for update in editor.edit():
            last = await store.append("w", [update])
    stored = await store.load("w")
    assert stored.last_seq == last and stored.update_count > 0
    assert reload(stored) == content(editor.doc)
    # a second compaction merges the old snapshot's content
    await store.compact("w", editor.doc.get_update(), last)
    assert reload(await store.load("w")) == content(editor.doc)


async def test_compaction_during_concurrent_appends_loses_nothing(store: Store) -> None:
    """The room rule: read the last seq applied, then take ``doc.get_update()``."""
    editor = Editor(seed=3)
    applied_seq = 0
    compactions = 0
    done = anyio.Event()

    async def writer(n: int) -> None:
        nonlocal applied_seq
        for _ in range(n):
            updates = editor.edit()  # applied to the room's doc first ...
            if updates:
                seq = await store.append("w", updates)  # ... then stored
                applied_seq = max(applied_seq, seq)
            await anyio.lowlevel.checkpoint()

    async def compactor() -> None:
        nonlocal compactions
        while not done.is_set():
            upto = applied_seq  # both captured with no await in between
            snapshot = editor.doc.get_update()
            if upto:
                await store.compact("w", snapshot, upto)
                compactions += 1
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(compactor)
        async with anyio.create_task_group() as writers:
            for _ in range(10):
                writers.start_soon(writer, 40)
        done.set()
    assert compactions > 1
    assert reload(await store.load("w")) == content(editor.doc)


async def test_history_window_keeps_recent_covered_updates(store: Store, clock: FakeClock) -> None:
    editor = Editor(seed=4)
    states: dict[int, dict[str, Any]] = {}
    last = 0
    for _ in range(100):
        clock.now += 1  # one update a second: seq k stored at t0 + k
        for update in editor.edit():
            last = await store.append("w", [update])
            states[last] = content(editor.doc)
    # covered: everything; window: the last 30 seconds
    await store.compact("w", editor.doc.get_update(), last, keep_history_seconds=30)
    stored = await store.load("w")
    assert stored.updates == () and reload(stored) == content(editor.doc)  # load skips covered
    base, kept = await store.history("w")
    assert base is None  # no full state exists before the window yet: nothing deleted
    assert [u.seq for u in kept] == list(range(1, last + 1))

    for _ in range(100):
        clock.now += 1
        for update in editor.edit():
            last = await store.append("w", [update])
            states[last] = content(editor.doc)
    first_snapshot_seq = stored.last_seq
    await store.compact("w", editor.doc.get_update(), last, keep_history_seconds=30)
    base, kept = await store.history("w")
    # the window starts inside the second stretch: the base is the first snapshot
    assert base is not None and kept[0].seq == first_snapshot_seq + 1
    assert all(u.stored_at <= clock.now for u in kept)
    assert [u.seq for u in kept] == list(range(kept[0].seq, last + 1))
    # every state from the base onwards can be rebuilt
    doc = rebuild(base, [])
    for u in kept:
        doc.apply_update(u.update)
        assert content(doc) == states[u.seq]
    # a compaction with no window drops the history
    clock.now += 1
    last = await store.append("w", editor.edit() or [b"\x00\x00"])
    await store.compact("w", editor.doc.get_update(), last)
    base, kept = await store.history("w")
    assert kept == [] and base is not None
    assert content(rebuild(base, [])) == content(editor.doc)


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
    assert exported == set(storage_pkg.__all__)


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
