"""Online backup and checked restore of a store's SQLite file (blocking: run on a thread).

Both use SQLite's backup API in one step (one consistent read of the source), so a
copy holds every commit made before it began while the server keeps writing (WAL
readers do not block the writer), and a ``dest-wal`` left over is SQLite's to handle
rather than ours to rename around. Every table is copied: updates, snapshots and
client-id claims alike.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ...errors import StorageError
from .schema import check_restorable, connect

__all__ = ("copy_database", "restore_database")


def copy_database(src: Path, dest: Path, busy_timeout: float, *, journal_mode: str = "DELETE") -> None:
    """Online-backup ``src`` into ``dest`` in one step; an existing ``dest`` is replaced.

    ``journal_mode="DELETE"`` makes the copy a single self-contained file (a backup
    to carry around); a restore asks for ``"WAL"``, the store's mode.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = connect(src, busy_timeout)
    try:
        target = sqlite3.connect(dest, timeout=busy_timeout)
        try:
            source.backup(target)  # pages=-1: all pages in one step
            target.execute(f"PRAGMA journal_mode = {journal_mode}")
        finally:
            target.close()
    finally:
        source.close()


def restore_database(src: Path, dest: Path, *, overwrite: bool) -> None:
    """Check the backup ``src`` (known version, ``quick_check``), then copy it to ``dest``."""
    if not src.is_file():
        raise StorageError(f"restore: {src} does not exist")
    if dest.exists() and not overwrite:
        raise StorageError(f"restore: {dest} exists; pass overwrite=True")
    conn = connect(src, 5.0, readonly=True)
    try:
        check_restorable(conn, src)
    finally:
        conn.close()
    copy_database(src, dest, 5.0, journal_mode="WAL")
