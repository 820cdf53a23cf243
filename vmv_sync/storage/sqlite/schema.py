"""The SQLite schema, its migrations and how connections are opened.

``_MIGRATIONS`` is a tuple of statement lists, one per schema version; ``PRAGMA
user_version`` is the number of migrations applied. On open, each missing version
runs in its own ``BEGIN IMMEDIATE`` transaction together with the ``user_version``
bump, so a crash mid-migration leaves the previous version intact. Append new
versions; never edit one that was released (databases in the field ran it).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from ...errors import StorageError

__all__ = ("SCHEMA_VERSION", "connect", "migrate", "check_restorable")

logger = logging.getLogger(__name__)

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
    (
        # The fencing epoch per workshop (EpochFence): never deleted, never decreases.
        """CREATE TABLE workshop_epochs (
            workshop_id TEXT PRIMARY KEY,
            epoch       INTEGER NOT NULL
        ) WITHOUT ROWID""",
        # The directory (invites, revocations, the token secret). The first two are the
        # tables server/auth.py used to create in this same file, so IF NOT EXISTS adopts
        # a database it already wrote, with its rows.
        """CREATE TABLE IF NOT EXISTS workshop_access (
            workshop_id TEXT PRIMARY KEY,
            invite_code TEXT NOT NULL,
            facilitator_id TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS revoked_participants (
            workshop_id TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            revoked_at REAL NOT NULL,
            PRIMARY KEY (workshop_id, participant_id)
        )""",
        """CREATE TABLE store_settings (
            name  TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


def connect(path: Path, busy_timeout: float, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: the store issues BEGIN/COMMIT itself.

    ``check_same_thread=False`` because the store runs each connection on worker
    threads, one at a time (its capacity limiters), never concurrently.
    """
    if readonly:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
    else:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, one transaction per version.

    A database from a newer vmv-sync is refused rather than written to: its tables
    may carry rules this version does not know.
    """
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


def check_restorable(conn: sqlite3.Connection, src: Path) -> None:
    """Refuse a file that is not a sound vmv-sync database of a known version.

    An older version is fine: the store migrates it when it opens the restored copy.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if not 1 <= version <= SCHEMA_VERSION:
        raise StorageError(f"{src}: not a vmv-sync database of a known version ({version})")
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise StorageError(f"{src}: integrity check failed: {result}")
