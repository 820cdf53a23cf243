"""The SQLite store: every Yjs update is committed here before it is relayed.

One writer task per store takes every pending ``append`` and commits them in ONE
transaction on a worker thread (group commit): callers arriving during a commit join
the next batch, so throughput comes from batching, never from delaying a commit with a
timer. Reads use a second connection, so WAL lets them run while the writer commits.
See docs/storage.md for the schema, the durability choice and the compaction rules.
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc
import anyio.to_thread

from ..errors import StorageError
from .base import StoredDoc, StoredUpdate, WorkshopInfo
from .rules import check_claims, check_updates, history_boundary

__all__ = ("SQLiteStore", "SCHEMA_VERSION")

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: One tuple of statements per schema version; ``PRAGMA user_version`` is the index
#: of the next migration to run. Append, never edit, once released.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # The per-workshop sequence counter: survives compaction deleting rows, so a
        # seq is never reused. history_from = every update with seq <= it is deleted.
        """CREATE TABLE workshops (
            workshop_id   TEXT PRIMARY KEY,
            last_seq      INTEGER NOT NULL,
            history_from  INTEGER NOT NULL DEFAULT 0,
            created_at    REAL NOT NULL,
            last_activity REAL
        ) WITHOUT ROWID""",
        # Clustered on (workshop_id, seq): load is one range scan. Updates are small.
        """CREATE TABLE updates (
            workshop_id TEXT NOT NULL,
            seq         INTEGER NOT NULL,
            data        BLOB NOT NULL,
            stored_at   REAL NOT NULL,
            PRIMARY KEY (workshop_id, seq)
        ) WITHOUT ROWID""",
        # At most two rows per workshop: the latest snapshot and the history base.
        # A rowid table because snapshots are large blobs.
        """CREATE TABLE snapshots (
            workshop_id TEXT NOT NULL,
            upto_seq    INTEGER NOT NULL,
            data        BLOB NOT NULL,
            created_at  REAL NOT NULL,
            PRIMARY KEY (workshop_id, upto_seq)
        )""",
    ),
    (
        # Which participant first wrote under each Yjs client id, per workshop;
        # written in the transaction of the update that claims it. Compaction never
        # touches it (a snapshot keeps the ids' content, not who wrote it).
        """CREATE TABLE client_ids (
            workshop_id TEXT NOT NULL,
            client_id   INTEGER NOT NULL,
            owner       TEXT NOT NULL,
            claimed_at  REAL NOT NULL,
            PRIMARY KEY (workshop_id, client_id)
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(eq=False)
class _Append:
    """One queued ``append`` call, woken by the writer after COMMIT (or failure)."""

    workshop_id: str
    updates: list[bytes]
    #: client id -> owner; ``None`` (the usual case) when the call claims nothing
    claims: dict[int, str] | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    seq: int = 0
    error: str | None = None
    cause: BaseException | None = None

    def fail(self, message: str, cause: BaseException | None) -> None:
        self.error, self.cause = message, cause
        self.done.set()


def _connect(path: Path, busy_timeout: float, *, readonly: bool = False) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, the module never does.
    if readonly:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
    else:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, one transaction per version."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{path}: schema version {version} is newer than this vmv-sync "
                    f"({SCHEMA_VERSION}); upgrade vmv-sync"
                )
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
            logger.info("%s: migrated schema to version %d", path, version + 1)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _check_restorable(conn: sqlite3.Connection, src: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if not 1 <= version <= SCHEMA_VERSION:
        raise StorageError(f"{src}: not a vmv-sync database of a known version ({version})")
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise StorageError(f"{src}: integrity check failed: {result}")


#: rows per multi-row INSERT: 4 parameters each, well under SQLite's 32766 limit
_ROWS_PER_INSERT = 500


def _insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]], tail: str = "") -> None:
    """``head`` + one ``VALUES`` group per row + ``tail``, in statements of at most
    ``_ROWS_PER_INSERT`` rows (each statement is one GIL round trip, not one per row)."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[start : start + _ROWS_PER_INSERT]
        group = "(" + ", ".join("?" * len(part[0])) + ")"
        conn.execute(head + ",".join([group] * len(part)) + tail, [value for row in part for value in row])


class SQLiteStore:
    """A durable :class:`~vmv_sync.storage.base.Store` in one SQLite file (WAL mode).

    Args:
        path: the database file; its parent folder is created if missing.
        busy_timeout: seconds to wait for a lock held by another process.
        synchronous: ``"FULL"`` (default) fsyncs the WAL at every commit, so a
            returned ``append`` survives power loss as well as ``kill -9``;
            ``"NORMAL"`` survives ``kill -9`` only, and is faster on slow disks.
        clock: wall-clock source for ``stored_at``/``created_at`` and the history
            window (tests pass a fake one); never used for ordering.

    Example:
        >>> async with SQLiteStore("data/vmv.sqlite3") as store:  # doctest: +SKIP
        ...     seq = await store.append("w1", [update])   # committed on return
        ...     doc = await store.load("w1")
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError("SQLiteStore needs a file path; use MemoryStore in memory")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._clock = clock
        self._state = _State.NEW
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        # One thread at a time per connection; the writer's limiter also orders
        # group commits, compactions and deletes.
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)
        self._pending: list[_Append] = []
        #: workshop id -> last committed seq (see _commit_sync)
        self._seq_cache: dict[str, int] = {}
        self._wakeup = anyio.Event()
        self._stack = AsyncExitStack()
        self._released = False
        self._writer_done = anyio.Event()
        #: committed write transactions of appends (metrics; < appends when grouped)
        self.commits = 0
        #: ``append`` calls committed
        self.appends = 0
        #: the largest number of ``append`` calls committed in one transaction
        self.max_batch = 0

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> SQLiteStore:
        if self._state is not _State.NEW:
            raise RuntimeError("an SQLiteStore can be entered only once")
        await self._stack.__aenter__()
        try:
            try:
                await anyio.to_thread.run_sync(self._open_sync, limiter=self._write_limiter)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {self.path}: {exc}") from exc
            finally:
                self._stack.push_async_callback(self._close_connections)
            tg = await self._stack.enter_async_context(anyio.create_task_group())
            await tg.start(self._run_writer)
        except BaseException:
            self._state = _State.CLOSED
            self._released = True
            await self._stack.aclose()
            raise
        self._state = _State.OPEN
        logger.info("%s: store open (synchronous=%s)", self.path, self._synchronous)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        if not self._released:
            self._released = True
            await self._stack.aclose()  # the writer has returned; close the connections
            logger.info("%s: store closed after %d commits", self.path, self.commits)

    async def aclose(self) -> None:
        """Stop accepting appends, commit the pending ones and stop the writer.

        Safe to call from any task (a shutdown phase "flush store"); the connections
        are released when the ``async with`` block exits. Appends made after this
        started fail with ``StorageError``.
        """
        if self._state is _State.OPEN:
            self._state = _State.CLOSING
            self._wakeup.set()
        if self._state is _State.CLOSING:
            with anyio.CancelScope(shield=True):
                await self._writer_done.wait()
            self._state = _State.CLOSED

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(self.path, self._busy_timeout)
        mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{self.path}: cannot use WAL mode (got {mode!r})")
        self._writer.execute(f"PRAGMA synchronous = {self._synchronous}")
        _migrate(self._writer, self.path)
        self._reader = _connect(self.path, self._busy_timeout)
        self._reader.execute("PRAGMA query_only = ON")

    async def _close_connections(self) -> None:
        def close() -> None:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()  # the last close checkpoints the WAL

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close, limiter=self._write_limiter)

    # -- group commit --------------------------------------------------------------

    async def append(
        self,
        workshop_id: str,
        updates: Sequence[bytes],
        *,
        claims: Mapping[int, str] | None = None,
    ) -> int:
        """Durably commit ``updates`` in order; return the seq of the last one.

        ``claims`` (Yjs client id -> owner) go into the same transaction; a client id
        already claimed in the workshop keeps its first owner. Returns only after
        COMMIT. If the caller is cancelled while waiting, the updates may or may not
        have been committed.
        """
        data = check_updates(updates)
        owners = check_claims(claims)
        if self._state is not _State.OPEN:
            raise StorageError(f"workshop {workshop_id}: the store is {self._state.value}")
        request = _Append(workshop_id, data, owners)
        self._pending.append(request)
        self._wakeup.set()
        await request.done.wait()
        if request.error is not None:
            raise StorageError(request.error) from request.cause
        return request.seq

    async def _run_writer(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        try:
            while True:
                if not self._pending:
                    if self._state is _State.CLOSING:
                        return
                    await self._wakeup.wait()
                    self._wakeup = anyio.Event()
                    continue
                batch, self._pending = self._pending, []
                with anyio.CancelScope(shield=True):
                    await self._commit(batch)
        finally:
            # Only reached with work left when the writer is cancelled: say so.
            for request in self._pending:
                request.fail(f"workshop {request.workshop_id}: the store closed", None)
            self._pending = []
            self._state = _State.CLOSING if self._state is _State.OPEN else self._state
            self._writer_done.set()

    async def _commit(self, batch: list[_Append]) -> None:
        try:
            seqs = await anyio.to_thread.run_sync(
                self._commit_sync, batch, limiter=self._write_limiter
            )
        except (sqlite3.Error, OSError) as exc:
            workshops = ", ".join(sorted({r.workshop_id for r in batch}))
            message = f"could not commit {len(batch)} appends (workshops {workshops}): {exc}"
            logger.error("%s: %s", self.path, message)
            for request in batch:
                request.fail(message, exc)
            return
        except BaseException as exc:
            for request in batch:
                request.fail(f"internal error while committing: {exc!r}", exc)
            raise
        self.commits += 1
        self.appends += len(batch)
        self.max_batch = max(self.max_batch, len(batch))
        for request, seq in zip(batch, seqs, strict=False):
            request.seq = seq
            request.done.set()

    def _commit_sync(self, batch: list[_Append]) -> list[int]:
        """One transaction for the whole batch, in as few statements as possible.

        Why few statements: this runs in a worker thread that must win the GIL back
        from a busy event loop after every SQLite call, so a statement per row (or per
        room) turns one commit into a convoy. Rows go in multi-row INSERTs, and the
        per-workshop sequence numbers come from a cache (this store is the only writer
        of a workshop's updates), read from the table only on a miss.
        """
        conn = self._require(self._writer)
        now = self._clock()
        last: dict[str, int] = {}
        seqs: list[int] = []
        rows: list[tuple[str, int, bytes, float]] = []
        claimed: dict[tuple[str, int], tuple[str, int, str, float]] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for request in batch:
                wid = request.workshop_id
                seq = last.get(wid)
                if seq is None:
                    seq = self._seq_cache.get(wid)
                if seq is None:
                    row = conn.execute(
                        "SELECT last_seq FROM workshops WHERE workshop_id = ?", (wid,)
                    ).fetchone()
                    seq = row[0] if row else 0
                rows.extend((wid, seq + i, data, now) for i, data in enumerate(request.updates, 1))
                seq += len(request.updates)
                last[wid] = seq
                seqs.append(seq)
                if request.claims:
                    for cid, owner in request.claims.items():
                        claimed.setdefault((wid, cid), (wid, cid, owner, now))  # first in batch wins
            _insert_rows(conn, "INSERT INTO updates (workshop_id, seq, data, stored_at) VALUES ", rows)
            if claimed:  # usually not: no statement at all then
                _insert_rows(
                    conn,
                    "INSERT INTO client_ids (workshop_id, client_id, owner, claimed_at) VALUES ",
                    list(claimed.values()),
                    " ON CONFLICT (workshop_id, client_id) DO NOTHING",
                )
            _insert_rows(
                conn,
                "INSERT INTO workshops (workshop_id, last_seq, created_at, last_activity) VALUES ",
                [(wid, seq, now, now) for wid, seq in last.items()],
                """ ON CONFLICT (workshop_id) DO UPDATE
                   SET last_seq = excluded.last_seq, last_activity = excluded.last_activity""",
            )
            conn.execute("COMMIT")
        except BaseException:
            self._seq_cache.clear()  # the table is the truth again after a failure
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._seq_cache.update(last)
        return seqs

    # -- helpers -------------------------------------------------------------------

    def _require(self, conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise StorageError(f"{self.path}: the store is not open")
        return conn

    async def _run(
        self,
        what: str,
        fn: Callable[[sqlite3.Connection], T],
        *,
        write: bool,
    ) -> T:
        """Run ``fn`` in one transaction on a worker thread; map SQLite errors."""
        if self._state is not _State.OPEN:
            raise StorageError(f"{what}: the store is {self._state.value}")

        def run() -> T:
            conn = self._require(self._writer if write else self._reader)
            # A read transaction too: snapshot and updates must come from one state,
            # or a compaction between the two SELECTs would hide updates.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        limiter = self._write_limiter if write else self._read_limiter
        try:
            return await anyio.to_thread.run_sync(run, limiter=limiter)
        except sqlite3.Error as exc:
            logger.error("%s: %s failed: %s", self.path, what, exc)
            raise StorageError(f"{what}: {exc}") from exc

    # -- reads ---------------------------------------------------------------------

    async def load(self, workshop_id: str) -> StoredDoc:
        def run(conn: sqlite3.Connection) -> StoredDoc:
            row = conn.execute(
                "SELECT last_seq FROM workshops WHERE workshop_id = ?", (workshop_id,)
            ).fetchone()
            if row is None:
                return StoredDoc(None, (), 0)
            top, snapshot = _latest_snapshot(conn, workshop_id)
            updates = conn.execute(
                "SELECT data FROM updates WHERE workshop_id = ? AND seq > ? ORDER BY seq",
                (workshop_id, top),
            ).fetchall()
            owners = conn.execute(
                "SELECT client_id, owner FROM client_ids WHERE workshop_id = ?", (workshop_id,)
            ).fetchall()
            return StoredDoc(snapshot, tuple(u for (u,) in updates), row[0], MappingProxyType(dict(owners)))

        return await self._run(f"workshop {workshop_id}: load", run, write=False)

    async def history(self, workshop_id: str) -> tuple[bytes | None, list[StoredUpdate]]:
        def run(conn: sqlite3.Connection) -> tuple[bytes | None, list[StoredUpdate]]:
            row = conn.execute(
                "SELECT history_from FROM workshops WHERE workshop_id = ?", (workshop_id,)
            ).fetchone()
            if row is None:
                return None, []
            base = None
            if row[0]:
                snap = conn.execute(
                    "SELECT data FROM snapshots WHERE workshop_id = ? AND upto_seq = ?",
                    (workshop_id, row[0]),
                ).fetchone()
                if snap is None:
                    raise StorageError(f"workshop {workshop_id}: history base {row[0]} missing")
                base = snap[0]
            updates = conn.execute(
                "SELECT seq, data, stored_at FROM updates"
                " WHERE workshop_id = ? AND seq > ? ORDER BY seq",
                (workshop_id, row[0]),
            ).fetchall()
            return base, [StoredUpdate(s, d, t) for s, d, t in updates]

        return await self._run(f"workshop {workshop_id}: history", run, write=False)

    async def stats(self, workshop_id: str) -> tuple[int, int]:
        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            top = conn.execute(
                "SELECT COALESCE(MAX(upto_seq), 0) FROM snapshots WHERE workshop_id = ?",
                (workshop_id,),
            ).fetchone()[0]
            count, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM updates"
                " WHERE workshop_id = ? AND seq > ?",
                (workshop_id, top),
            ).fetchone()
            return int(count), int(size)

        return await self._run(f"workshop {workshop_id}: stats", run, write=False)

    async def list_workshops(self) -> list[WorkshopInfo]:
        def run(conn: sqlite3.Connection) -> list[WorkshopInfo]:
            rows = conn.execute(
                """SELECT w.workshop_id,
                    (SELECT COUNT(*) FROM updates u WHERE u.workshop_id = w.workshop_id),
                    (SELECT COALESCE(SUM(LENGTH(u.data)), 0) FROM updates u
                      WHERE u.workshop_id = w.workshop_id),
                    (SELECT COALESCE(SUM(LENGTH(s.data)), 0) FROM snapshots s
                      WHERE s.workshop_id = w.workshop_id),
                    w.last_activity
                FROM workshops w ORDER BY w.workshop_id"""
            ).fetchall()
            return [WorkshopInfo(*row) for row in rows]

        return await self._run("list workshops", run, write=False)

    # -- writes besides append -------------------------------------------------------

    async def compact(
        self,
        workshop_id: str,
        snapshot: bytes,
        upto_seq: int,
        *,
        keep_history_seconds: float = 0.0,
    ) -> None:
        snapshot = bytes(snapshot)

        def run(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT last_seq, history_from FROM workshops WHERE workshop_id = ?",
                (workshop_id,),
            ).fetchone()
            last_seq, history_from = row if row else (0, 0)
            if upto_seq < 0 or upto_seq > last_seq:
                raise ValueError(
                    f"workshop {workshop_id!r}: cannot compact up to seq {upto_seq}, "
                    f"last committed seq is {last_seq}"
                )
            kept = [
                s
                for (s,) in conn.execute(
                    "SELECT upto_seq FROM snapshots WHERE workshop_id = ?", (workshop_id,)
                )
            ]
            if row is None or upto_seq <= max(kept, default=0):
                logger.debug("workshop %s: stale compaction to %d ignored", workshop_id, upto_seq)
                return
            now = self._clock()
            first_in_window = None
            if keep_history_seconds > 0:
                first_in_window = conn.execute(
                    "SELECT MIN(seq) FROM updates WHERE workshop_id = ? AND seq > ?"
                    " AND seq <= ? AND stored_at > ?",
                    (workshop_id, history_from, upto_seq, now - keep_history_seconds),
                ).fetchone()[0]
            new_from = history_boundary(history_from, kept, upto_seq, first_in_window)
            conn.execute(
                "INSERT INTO snapshots (workshop_id, upto_seq, data, created_at)"
                " VALUES (?, ?, ?, ?)",
                (workshop_id, upto_seq, snapshot, now),
            )
            conn.execute(
                "DELETE FROM snapshots WHERE workshop_id = ? AND upto_seq NOT IN (?, ?)",
                (workshop_id, new_from, upto_seq),
            )
            deleted = conn.execute(
                "DELETE FROM updates WHERE workshop_id = ? AND seq <= ?",
                (workshop_id, new_from),
            ).rowcount
            conn.execute(
                "UPDATE workshops SET history_from = ? WHERE workshop_id = ?",
                (new_from, workshop_id),
            )
            logger.info(
                "workshop %s: compacted to seq %d (%d bytes), deleted %d updates, history from %d",
                workshop_id, upto_seq, len(snapshot), deleted, new_from,
            )

        await self._run(f"workshop {workshop_id}: compact", run, write=True)

    async def delete(self, workshop_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for table in ("updates", "snapshots", "client_ids", "workshops"):
                conn.execute(f"DELETE FROM {table} WHERE workshop_id = ?", (workshop_id,))
            self._seq_cache.pop(workshop_id, None)
            logger.info("workshop %s: deleted", workshop_id)

        await self._run(f"workshop {workshop_id}: delete", run, write=True)

    # -- backup and restore ------------------------------------------------------------

    async def backup(self, dest_path: str | os.PathLike[str]) -> None:
        """Copy the database to ``dest_path`` while the server keeps writing.

        Uses SQLite's online backup API from a fresh connection in one step, so the
        copy is one consistent state holding every update committed before the copy
        began. An existing ``dest_path`` is overwritten (transactionally). The copy
        is a single self-contained file (rollback-journal mode).
        """
        if self._state is not _State.OPEN:
            raise StorageError(f"backup: the store is {self._state.value}")
        dest = Path(dest_path)
        if dest.resolve() == self.path.resolve():
            raise ValueError("cannot back up a database onto itself")
        try:
            await anyio.to_thread.run_sync(_copy, self.path, dest, self._busy_timeout)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"backup of {self.path} to {dest}: {exc}") from exc
        logger.info("%s: backed up to %s", self.path, dest)

    @classmethod
    async def restore(
        cls,
        src: str | os.PathLike[str],
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
    ) -> None:
        """Make ``dest`` a copy of the backup ``src`` after checking it.

        Run it with no server using ``dest``: a running store would keep its own view.
        Refuses to replace an existing ``dest`` unless ``overwrite`` is true.
        """
        src_path, dest_path = Path(src), Path(dest)

        def run() -> None:
            if not src_path.is_file():
                raise StorageError(f"restore: {src_path} does not exist")
            if dest_path.exists() and not overwrite:
                raise StorageError(f"restore: {dest_path} exists; pass overwrite=True")
            conn = _connect(src_path, 5.0, readonly=True)
            try:
                _check_restorable(conn, src_path)
            finally:
                conn.close()
            _copy(src_path, dest_path, 5.0, journal_mode="WAL")

        try:
            await anyio.to_thread.run_sync(run)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"restore of {src_path} to {dest_path}: {exc}") from exc
        logger.info("restored %s to %s", src_path, dest_path)


def _latest_snapshot(conn: sqlite3.Connection, workshop_id: str) -> tuple[int, bytes | None]:
    row: Any = conn.execute(
        "SELECT upto_seq, data FROM snapshots WHERE workshop_id = ?"
        " ORDER BY upto_seq DESC LIMIT 1",
        (workshop_id,),
    ).fetchone()
    return (row[0], row[1]) if row else (0, None)


def _copy(
    src: Path, dest: Path, busy_timeout: float, *, journal_mode: str = "DELETE"
) -> None:
    """Online-backup ``src`` into ``dest`` in one step (one consistent read)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = _connect(src, busy_timeout)
    try:
        target = sqlite3.connect(dest, timeout=busy_timeout)
        try:
            source.backup(target)  # pages=-1: all pages in one step
            target.execute(f"PRAGMA journal_mode = {journal_mode}")
        finally:
            target.close()
    finally:
        source.close()
