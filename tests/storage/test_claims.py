"""Client-id ownership: claims are committed with the update that makes them.

The server records which participant first wrote under each Yjs client id; the store
must keep that durably and atomically with the update (a claim without its update, or
an update without its claim, would let a second participant take the id over after a
restart), and must REFUSE an append that claims an id another owner holds (a silent
"first wins" would commit the second writer's update under the first one's id).
The contract part runs over every backend; the SQLite part uses real files and real
failures provoked with triggers.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from vmv_sync.errors import StorageError
from vmv_sync.storage import ClaimConflict, SQLiteStore, StoredDoc
from vmv_sync.storage.rules import MAX_CLIENT_ID
from vmv_sync.storage.sqlite import SCHEMA_VERSION

pytestmark = pytest.mark.anyio

#: the largest client id JavaScript's Yjs can make (Number.MAX_SAFE_INTEGER)
JS_MAX = 2**53 - 1


async def test_claims_load_with_the_workshop(store: Any) -> None:
    assert await store.append("w", [b"a"], claims={7: "ann", JS_MAX: "bob"}) == 1
    assert await store.append("other", [b"x"], claims={7: "cid"}) == 1
    doc = await store.load("w")
    assert dict(doc.client_ids) == {7: "ann", JS_MAX: "bob"}
    assert dict((await store.load("other")).client_ids) == {7: "cid"}
    assert doc == StoredDoc(None, (b"a",), 1, {7: "ann", JS_MAX: "bob"})
    assert StoredDoc(None, (), 0).client_ids == {}
    with pytest.raises(TypeError):
        doc.client_ids[8] = "eve"  # read-only


async def test_a_claim_of_another_owners_id_is_refused(store: Any) -> None:
    await store.append("w", [b"a"], claims={1: "ann"})
    with pytest.raises(ClaimConflict) as refused:
        await store.append("w", [b"b"], claims={1: "bob", 2: "bob"})
    assert (refused.value.client_id, refused.value.owner, refused.value.claimed_by) == (1, "ann", "bob")
    assert isinstance(refused.value, StorageError)  # callers that only know StorageError stay safe
    # nothing of the refused append is stored: neither its update nor its other claim
    assert await store.load("w") == StoredDoc(None, (b"a",), 1, {1: "ann"})
    # the owner claiming its own id again is a no-op, and seqs go on without a gap
    assert await store.append("w", [b"c"], claims={1: "ann", 3: "ann"}) == 2
    assert await store.load("w") == StoredDoc(None, (b"a", b"c"), 2, {1: "ann", 3: "ann"})


async def test_conflicting_claims_inside_one_batch_refuse_all_but_the_first(store: Any) -> None:
    """Concurrent appends (grouped into one commit where the store groups): one owner wins,
    every other claimant is refused, and only the winner's update is stored."""
    order: list[str] = []
    refused: list[str] = []

    async def claim(owner: str) -> None:
        order.append(owner)
        try:
            await store.append("w", [owner.encode()], claims={5: owner})
        except ClaimConflict as exc:
            assert exc.owner == order[0]
            refused.append(owner)

    async with anyio.create_task_group() as tg:
        for owner in ("p0", "p1", "p2", "p3"):
            tg.start_soon(claim, owner)
    assert sorted(refused) == sorted(order[1:])
    assert await store.load("w") == StoredDoc(None, (order[0].encode(),), 1, {5: order[0]})


async def test_claims_only_append(store: Any) -> None:
    assert await store.append("w", [], claims={3: "@server"}) == 0
    await store.append("w", [b"a", b"b"])
    assert await store.append("w", [], claims={4: "ann"}) == 2
    doc = await store.load("w")
    assert (doc.updates, doc.last_seq, dict(doc.client_ids)) == ((b"a", b"b"), 2, {3: "@server", 4: "ann"})
    assert await store.append("w", [], claims={}) == 2


async def test_bad_claims_fail_alone(store: Any) -> None:
    for bad in ({-1: "ann"}, {MAX_CLIENT_ID + 1: "ann"}):
        with pytest.raises(ValueError):
            await store.append("w", [b"a"], claims=bad)
    for bad in ({True: "ann"}, {"7": "ann"}, {7: ""}, {7: None}, [(7, "ann")]):
        with pytest.raises(TypeError):
            await store.append("w", [b"a"], claims=bad)
    assert await store.load("w") == StoredDoc(None, (), 0)
    await store.append("w", [b"a"], claims={MAX_CLIENT_ID: "ann"})
    assert dict((await store.load("w")).client_ids) == {MAX_CLIENT_ID: "ann"}


async def test_claims_survive_compaction_and_delete_removes_them(store: Any) -> None:
    await store.append("w", [b"a"], claims={1: "ann"})
    await store.append("w", [b"b"], claims={2: "bob"})
    await store.compact("w", b"S2", 2)
    doc = await store.load("w")
    assert (doc.snapshot, doc.updates, dict(doc.client_ids)) == (b"S2", (), {1: "ann", 2: "bob"})
    await store.delete("w")
    assert await store.load("w") == StoredDoc(None, (), 0)
    await store.append("w", [b"again"], claims={1: "bob"})  # a deleted workshop starts afresh
    assert dict((await store.load("w")).client_ids) == {1: "bob"}


# -- SQLite: durability and atomicity -------------------------------------------------


async def test_claims_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "vmv.sqlite3"
    async with SQLiteStore(path) as store:
        await store.append("w", [b"a"], claims={2**40: "ann"})
        await store.compact("w", b"S1", 1)
    async with SQLiteStore(path) as store:
        assert dict((await store.load("w")).client_ids) == {2**40: "ann"}
        with pytest.raises(ClaimConflict):
            await store.append("w", [b"b"], claims={2**40: "eve"})
    async with SQLiteStore(path) as store:
        assert await store.load("w") == StoredDoc(b"S1", (), 1, {2**40: "ann"})


@pytest.mark.parametrize("failing_table", ["updates", "client_ids"])
async def test_failed_commit_stores_neither_claims_nor_updates(tmp_path: Path, failing_table: str) -> None:
    path = tmp_path / "vmv.sqlite3"
    async with SQLiteStore(path) as store:
        await store.append("w", [b"before"], claims={1: "ann"})
        with sqlite3.connect(path) as other:  # a real failure inside the commit
            other.execute(
                f"CREATE TRIGGER fail BEFORE INSERT ON {failing_table} "
                "BEGIN SELECT RAISE(ABORT, 'simulated I/O failure'); END"
            )
        errors: list[StorageError] = []

        async def caller(i: int) -> None:
            try:
                await store.append("w", [b"lost%d" % i], claims={10 + i: f"p{i}"})
            except StorageError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(caller, i)
        assert len(errors) == 5 and "simulated I/O failure" in str(errors[0])
        with sqlite3.connect(path) as other:
            other.execute("DROP TRIGGER fail")
        assert await store.load("w") == StoredDoc(None, (b"before",), 1, {1: "ann"})
        # the store carries on, with seqs and claims as if the failed batch never was
        assert await store.append("w", [b"after"], claims={10: "p9"}) == 2
    async with SQLiteStore(path) as store:
        assert await store.load("w") == StoredDoc(None, (b"before", b"after"), 2, {1: "ann", 10: "p9"})


async def test_read_only_database_stores_neither(tmp_path: Path) -> None:
    """A database that became unwritable under the store (here: locked by a writer)."""
    path = tmp_path / "vmv.sqlite3"
    async with SQLiteStore(path, busy_timeout=0.05) as store:
        await store.append("w", [b"a"], claims={1: "ann"})
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # holds the write lock
            with pytest.raises(StorageError):
                await store.append("w", [b"b"], claims={2: "bob"})
        finally:
            other.close()
        assert await store.load("w") == StoredDoc(None, (b"a",), 1, {1: "ann"})


async def test_backup_and_restore_carry_claims(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "live.sqlite3") as store:
        await store.append("w", [b"a"], claims={1: "ann", 2: "@server"})
        await store.backup(tmp_path / "copy.sqlite3")
    await SQLiteStore.restore(tmp_path / "copy.sqlite3", tmp_path / "restored.sqlite3")
    async with SQLiteStore(tmp_path / "restored.sqlite3") as store:
        assert dict((await store.load("w")).client_ids) == {1: "ann", 2: "@server"}


# -- SQLite: migration from schema version 1 -------------------------------------------

#: The schema as version 1 created it (a verbatim copy: the test must not follow edits).
SCHEMA_V1 = (
    """CREATE TABLE workshops (
        workshop_id   TEXT PRIMARY KEY,
        last_seq      INTEGER NOT NULL,
        history_from  INTEGER NOT NULL DEFAULT 0,
        created_at    REAL NOT NULL,
        last_activity REAL
    ) WITHOUT ROWID""",
    """CREATE TABLE updates (
        workshop_id TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        data        BLOB NOT NULL,
        stored_at   REAL NOT NULL,
        PRIMARY KEY (workshop_id, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE snapshots (
        workshop_id TEXT NOT NULL,
        upto_seq    INTEGER NOT NULL,
        data        BLOB NOT NULL,
        created_at  REAL NOT NULL,
        PRIMARY KEY (workshop_id, upto_seq)
    )""",
)


def make_v1_database(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for statement in SCHEMA_V1:
            conn.execute(statement)
        conn.execute("INSERT INTO workshops VALUES ('w', 3, 0, 1.0, 3.0)")
        conn.execute("INSERT INTO snapshots VALUES ('w', 2, x'5332', 2.0)")
        conn.execute("INSERT INTO updates VALUES ('w', 3, x'7533', 3.0)")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_migration_from_version_1(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    make_v1_database(path)
    async with SQLiteStore(path) as store:
        assert await store.load("w") == StoredDoc(b"S2", (b"u3",), 3)
        assert await store.append("w", [b"u4"], claims={9: "ann"}) == 4
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT workshop_id, client_id, owner FROM client_ids").fetchall() == [("w", 9, "ann")]
    async with SQLiteStore(path) as store:
        assert await store.load("w") == StoredDoc(b"S2", (b"u3", b"u4"), 4, {9: "ann"})


async def test_restore_of_a_version_1_backup_migrates(tmp_path: Path) -> None:
    make_v1_database(tmp_path / "old.sqlite3")
    await SQLiteStore.restore(tmp_path / "old.sqlite3", tmp_path / "new.sqlite3")
    async with SQLiteStore(tmp_path / "new.sqlite3") as store:
        await store.append("w", [], claims={1: "ann"})
        assert await store.load("w") == StoredDoc(b"S2", (b"u3",), 3, {1: "ann"})
