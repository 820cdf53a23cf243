"""The store seams (issue 15): the two Protocols, the reusable group commit, open_store.

The group-commit tests drive :class:`GroupCommit` with a small in-process backend (a
dict behind an async ``commit_batch``, like a PostgreSQL store would give it), to show
it needs nothing of SQLite; the stores' own use of it is covered by the contract
suite (every backend) and test_sqlite.py / test_postgres.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

import vmv_sync.storage as storage_pkg
from vmv_sync.errors import ConfigError, StorageError
from vmv_sync.storage import (
    ClaimConflict,
    Directory,
    EpochFence,
    MemoryStore,
    PostgresStore,
    RoomStore,
    SQLiteStore,
    Store,
    StoreAdmin,
    open_store,
)
from vmv_sync.storage.groupcommit import GroupCommit, PendingAppend

pytestmark = pytest.mark.anyio

STORAGE = Path(storage_pkg.__file__).parent


# -- the Protocols ------------------------------------------------------------------


def protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(protocol).items()
        if callable(member) and (not name.startswith("_") or name in ("__aenter__", "__aexit__"))
    }


def test_seams_split_the_hot_path_from_administration() -> None:
    assert set(protocol_methods(RoomStore)) == {"__aenter__", "__aexit__", "aclose", "load", "append", "compact"}
    assert set(protocol_methods(StoreAdmin)) == {"history", "stats", "list_workshops", "delete"}
    assert {RoomStore, StoreAdmin} <= set(Store.__mro__)


def test_directory_and_fence_seams() -> None:
    assert set(protocol_methods(Directory)) == {
        "get_or_create_secret", "create_invite", "set_invite", "get_invite", "revoke", "revoked", "is_revoked",
    }  # fmt: skip
    assert set(protocol_methods(EpochFence)) == {"claim_epoch", "current_epoch", "append"}


@pytest.mark.parametrize("implementation", [SQLiteStore, MemoryStore, PostgresStore])
@pytest.mark.parametrize("protocol", [RoomStore, StoreAdmin, Directory, EpochFence])
def test_every_store_implements_every_seam(implementation: type, protocol: type) -> None:
    """Same parameter names, kinds and defaults as the Protocol (mypy checks types).

    ``append`` takes ``epoch=None`` beyond RoomStore's, so today's callers (and
    wrappers that implement only RoomStore) are unchanged.
    """
    for name, expected in protocol_methods(protocol).items():
        got = inspect.signature(getattr(implementation, name))
        shape = [(p.name, p.kind, p.default) for p in expected.parameters.values()]
        params = [(p.name, p.kind, p.default) for p in got.parameters.values()]
        if protocol is RoomStore and name == "append":
            assert params[-1] == ("epoch", inspect.Parameter.KEYWORD_ONLY, None)
            params = params[:-1]
        assert params == shape, name


def test_old_import_paths_still_work() -> None:
    from vmv_sync.storage.memory import check_updates, history_boundary
    from vmv_sync.storage.rules import check_updates as rule
    from vmv_sync.storage.sqlite import SCHEMA_VERSION
    from vmv_sync.storage.sqlite import SQLiteStore as Same

    assert check_updates is rule and callable(history_boundary)
    assert Same is SQLiteStore and SCHEMA_VERSION == 3


def test_storage_modules_stay_small() -> None:
    sizes = {p.relative_to(STORAGE).as_posix(): len(p.read_text().splitlines()) for p in STORAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 450} == {}


# -- open_store ---------------------------------------------------------------------


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_store("memory:"), MemoryStore)
    assert isinstance(open_store(":memory:"), MemoryStore)
    relative = open_store("sqlite:///data/a.sqlite3")
    assert isinstance(relative, SQLiteStore) and relative.path == Path("data/a.sqlite3")
    absolute = open_store(f"sqlite:///{tmp_path}/b.sqlite3")  # sqlite:////abs/path
    assert isinstance(absolute, SQLiteStore) and absolute.path == tmp_path / "b.sqlite3"
    plain = open_store(tmp_path / "c.sqlite3", synchronous="NORMAL", busy_timeout=1.0)
    assert isinstance(plain, SQLiteStore) and plain.path == tmp_path / "c.sqlite3"
    assert (plain._synchronous, plain._busy_timeout) == ("NORMAL", 1.0)
    for url in ("postgresql://vmv:s3cret@db.example:5432/vmv", "postgres://db.example/vmv"):
        made = open_store(url)
        assert isinstance(made, PostgresStore) and made.url == url and "s3cret" not in made.name


@pytest.mark.parametrize(
    "url, scheme",
    [
        ("mysql://vmv:s3cret@db.example/vmv", "mysql"),
        ("postgresql:vmv", "postgresql"),
        ("redis://localhost", "redis"),
        ("sqlite://host/file.sqlite3", "sqlite"),
        ("sqlite:///", "sqlite"),
        ("file:vmv.sqlite3", "file"),
    ],
)
def test_open_store_refuses_other_schemes(url: str, scheme: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value)
    assert repr(scheme) in message and "sqlite:///" in message and "memory:" in message and "postgresql://" in message
    assert "s3cret" not in message  # a URL may carry a password: name only the scheme


def test_open_store_refuses_empty_or_in_memory_sqlite() -> None:
    for url in ("", "sqlite:///:memory:"):
        with pytest.raises(ConfigError):
            open_store(url)


async def test_open_store_gives_a_working_store(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path}/vmv.sqlite3") as store:
        assert await store.append("w", [b"a"], claims={1: "ann"}) == 1
    async with open_store(tmp_path / "vmv.sqlite3") as store:
        assert dict((await store.load("w")).client_ids) == {1: "ann"}


# -- the group commit, over a backend that is not SQLite ----------------------------------


class DictBackend:
    """A tiny durable-looking backend: a batch is applied entirely, or not at all."""

    def __init__(self) -> None:
        self.rows: dict[str, list[bytes]] = {}
        self.batches: list[int] = []
        self.fail_next: BaseException | None = None
        #: every batch holding this workshop fails (a fault of one workshop's rows)
        self.fail_workshop: str | None = None
        #: requests of this workshop are refused alone (like a claim conflict)
        self.refuse_workshop: str | None = None
        self.gate = anyio.Event()
        self.gate.set()

    async def commit_batch(self, batch: list[PendingAppend]) -> Sequence[int | StorageError]:
        await self.gate.wait()
        await anyio.lowlevel.checkpoint()
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        if any(request.workshop_id == self.fail_workshop for request in batch):
            raise OSError(f"cannot write {self.fail_workshop}")
        staged = {wid: list(rows) for wid, rows in self.rows.items()}
        seqs: list[int | StorageError] = []
        for request in batch:
            if request.workshop_id == self.refuse_workshop:
                seqs.append(ClaimConflict(request.workshop_id, 1, "ann", "bob"))
                continue
            staged.setdefault(request.workshop_id, []).extend(request.updates)
            seqs.append(len(staged[request.workshop_id]))
        self.rows = staged
        self.batches.append(len(batch))
        return seqs


async def test_group_commit_batches_and_wakes_every_caller() -> None:
    backend = DictBackend()
    group = GroupCommit(backend.commit_batch, name="dict", failures=(OSError,))
    got: dict[int, list[int]] = {}
    async with anyio.create_task_group() as tg:
        await tg.start(group.run)

        async def caller(task: int) -> None:
            got[task] = [await group.append("w", [b"%d:%d" % (task, i)], None) for i in range(5)]

        async with anyio.create_task_group() as callers:
            for task in range(20):
                callers.start_soon(caller, task)
        await group.aclose()
    assert group.appends == 100 and group.commits == len(backend.batches) < 100
    assert group.max_batch == max(backend.batches) > 1
    for task, seqs in got.items():
        assert [backend.rows["w"][s - 1] for s in seqs] == [b"%d:%d" % (task, i) for i in range(5)]


async def test_group_commit_fails_every_caller_of_a_failed_batch_then_carries_on() -> None:
    backend = DictBackend()
    group = GroupCommit(backend.commit_batch, name="dict", failures=(OSError,))
    errors: list[StorageError] = []
    async with anyio.create_task_group() as tg:
        await tg.start(group.run)
        backend.gate = anyio.Event()  # hold the first batch until all callers queued

        async def caller(i: int) -> None:
            try:
                await group.append("w0", [b"x"], {i: "p"})
            except StorageError as exc:
                errors.append(exc)

        backend.fail_next = OSError("disk full")
        async with anyio.create_task_group() as callers:
            for i in range(6):
                callers.start_soon(caller, i)
            await anyio.wait_all_tasks_blocked()
            backend.gate.set()
        assert len(errors) == 6 and all("disk full" in str(e) for e in errors)
        assert isinstance(errors[0].__cause__, OSError)
        assert backend.rows == {}
        assert await group.append("w0", [b"after"], None) == 1
        await group.aclose()


async def test_group_commit_aclose_flushes_then_refuses() -> None:
    backend = DictBackend()
    group = GroupCommit(backend.commit_batch, name="dict")
    seqs: list[int] = []
    async with anyio.create_task_group() as tg:
        await tg.start(group.run)

        async def caller() -> None:
            seqs.append(await group.append("w", [b"q"], None))

        for _ in range(10):
            tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        await group.aclose()
    assert sorted(seqs) == list(range(1, 11)) and not group.accepting
    with pytest.raises(StorageError, match="closing"):
        await group.append("w", [b"late"], None)


async def test_group_commit_internal_error_fails_callers_and_ends_the_writer() -> None:
    backend = DictBackend()
    group = GroupCommit(backend.commit_batch, name="dict", failures=(OSError,))
    backend.fail_next = KeyError("bug")
    caught: list[StorageError] = []

    async def caller() -> None:
        try:
            await group.append("w", [b"x"], None)
        except StorageError as exc:
            caught.append(exc)

    with pytest.raises(BaseExceptionGroup) as group_error:
        async with anyio.create_task_group() as tg:
            await tg.start(group.run)
            tg.start_soon(caller)
    assert group_error.group_contains(KeyError)
    assert len(caught) == 1 and "internal error" in str(caught[0])
    assert not group.accepting


async def test_group_commit_a_failing_workshop_does_not_fail_its_neighbours_in_the_batch() -> None:
    backend = DictBackend()
    backend.fail_workshop = "bad"
    group = GroupCommit(backend.commit_batch, name="dict", failures=(OSError,))
    results: dict[str, list[object]] = {"bad": [], "good": []}
    async with anyio.create_task_group() as tg:
        await tg.start(group.run)
        backend.gate = anyio.Event()  # one batch with both workshops

        async def caller(wid: str) -> None:
            try:
                results[wid].append(await group.append(wid, [b"x"], None))
            except StorageError as exc:
                results[wid].append(exc)

        async with anyio.create_task_group() as callers:
            for i in range(6):
                callers.start_soon(caller, "bad" if i % 2 else "good")
            await anyio.wait_all_tasks_blocked()
            backend.gate.set()
        await group.aclose()
    assert all(isinstance(r, StorageError) for r in results["bad"]) and len(results["bad"]) == 3
    assert sorted(results["good"]) == [1, 2, 3]  # type: ignore[type-var]
    assert backend.rows == {"good": [b"x", b"x", b"x"]}


async def test_group_commit_a_refused_request_fails_alone_with_its_refusal() -> None:
    backend = DictBackend()
    backend.refuse_workshop = "squat"
    group = GroupCommit(backend.commit_batch, name="dict", failures=(OSError,))
    results: dict[str, list[object]] = {"squat": [], "good": []}
    async with anyio.create_task_group() as tg:
        await tg.start(group.run)
        backend.gate = anyio.Event()  # one batch with both workshops

        async def caller(wid: str) -> None:
            try:
                results[wid].append(await group.append(wid, [b"x"], None))
            except StorageError as exc:
                results[wid].append(exc)

        async with anyio.create_task_group() as callers:
            for i in range(4):
                callers.start_soon(caller, "squat" if i % 2 else "good")
            await anyio.wait_all_tasks_blocked()
            backend.gate.set()
        await group.aclose()
    assert backend.batches == [4]  # one commit: the refusal did not split or fail the batch
    assert [type(r) for r in results["squat"]] == [ClaimConflict, ClaimConflict]
    assert sorted(results["good"]) == [1, 2]  # type: ignore[type-var]
    assert backend.rows == {"good": [b"x", b"x"]}
