"""The SQLite store's reads, as plain functions of a connection inside a transaction.

The store runs each of them in ONE read transaction on its reader connection, so the
snapshot, the updates and the claims come from the same committed state (a
compaction between two SELECTs would otherwise hide updates).
"""

from __future__ import annotations

import sqlite3
from types import MappingProxyType
from typing import Any

from ...errors import StorageError
from ..base import StoredDoc, StoredUpdate, WorkshopInfo

__all__ = ("load", "history", "stats", "list_workshops", "latest_snapshot")


def latest_snapshot(conn: sqlite3.Connection, workshop_id: str) -> tuple[int, bytes | None]:
    """``(upto_seq, data)`` of the newest snapshot, ``(0, None)`` without one."""
    row: Any = conn.execute(
        "SELECT upto_seq, data FROM snapshots WHERE workshop_id = ? ORDER BY upto_seq DESC LIMIT 1",
        (workshop_id,),
    ).fetchone()
    return (row[0], row[1]) if row else (0, None)


def load(conn: sqlite3.Connection, workshop_id: str) -> StoredDoc:
    row = conn.execute("SELECT last_seq FROM workshops WHERE workshop_id = ?", (workshop_id,)).fetchone()
    if row is None:
        return StoredDoc(None, (), 0)
    top, snapshot = latest_snapshot(conn, workshop_id)
    updates = conn.execute(
        "SELECT data FROM updates WHERE workshop_id = ? AND seq > ? ORDER BY seq",
        (workshop_id, top),
    ).fetchall()
    owners = conn.execute(
        "SELECT client_id, owner FROM client_ids WHERE workshop_id = ?", (workshop_id,)
    ).fetchall()
    return StoredDoc(snapshot, tuple(u for (u,) in updates), row[0], MappingProxyType(dict(owners)))


def history(conn: sqlite3.Connection, workshop_id: str) -> tuple[bytes | None, list[StoredUpdate]]:
    row = conn.execute("SELECT history_from FROM workshops WHERE workshop_id = ?", (workshop_id,)).fetchone()
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
        "SELECT seq, data, stored_at FROM updates WHERE workshop_id = ? AND seq > ? ORDER BY seq",
        (workshop_id, row[0]),
    ).fetchall()
    return base, [StoredUpdate(s, d, t) for s, d, t in updates]


def stats(conn: sqlite3.Connection, workshop_id: str) -> tuple[int, int]:
    top = conn.execute(
        "SELECT COALESCE(MAX(upto_seq), 0) FROM snapshots WHERE workshop_id = ?", (workshop_id,)
    ).fetchone()[0]
    count, size = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM updates WHERE workshop_id = ? AND seq > ?",
        (workshop_id, top),
    ).fetchone()
    return int(count), int(size)


def list_workshops(conn: sqlite3.Connection) -> list[WorkshopInfo]:
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
