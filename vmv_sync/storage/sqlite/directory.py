"""The SQLite store's directory and epochs: small, rarely written tables.

Plain functions of a connection inside a transaction the store opened (the writer's
``BEGIN IMMEDIATE`` for writes), like :mod:`.reads` and :mod:`.writes`. The tables
are schema version 3 (:mod:`.schema`); ``workshop_access`` and
``revoked_participants`` keep the layout server/auth.py used to create in this file.
"""

from __future__ import annotations

import sqlite3

from ...errors import StorageError
from ..base import Invite

__all__ = (
    "get_or_create_secret",
    "create_invite",
    "set_invite",
    "get_invite",
    "revoke",
    "revoked",
    "claim_epoch",
    "current_epoch",
)

_SECRET = "token_secret"


def get_or_create_secret(conn: sqlite3.Connection, candidate: str) -> str:
    conn.execute("INSERT INTO store_settings (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (_SECRET, candidate))
    return str(conn.execute("SELECT value FROM store_settings WHERE name = ?", (_SECRET,)).fetchone()[0])


def create_invite(conn: sqlite3.Connection, invite: Invite) -> Invite:
    try:
        conn.execute(
            "INSERT INTO workshop_access (workshop_id, invite_code, facilitator_id, created_at) VALUES (?, ?, ?, ?)",
            (invite.workshop_id, invite.code, invite.facilitator_id, invite.created_at),
        )
    except sqlite3.IntegrityError as exc:
        raise StorageError(f"workshop {invite.workshop_id}: it already has an invite") from exc
    return invite


def set_invite(conn: sqlite3.Connection, workshop_id: str, code: str) -> bool:
    cursor = conn.execute("UPDATE workshop_access SET invite_code = ? WHERE workshop_id = ?", (code, workshop_id))
    return cursor.rowcount > 0


def get_invite(conn: sqlite3.Connection, workshop_id: str) -> Invite | None:
    row = conn.execute(
        "SELECT workshop_id, invite_code, facilitator_id, created_at FROM workshop_access WHERE workshop_id = ?",
        (workshop_id,),
    ).fetchone()
    return Invite(*row) if row else None


def revoke(conn: sqlite3.Connection, workshop_id: str, participant_id: str, now: float) -> None:
    conn.execute(
        "INSERT INTO revoked_participants (workshop_id, participant_id, revoked_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (workshop_id, participant_id, now),
    )


def revoked(conn: sqlite3.Connection, workshop_id: str) -> frozenset[str]:
    rows = conn.execute("SELECT participant_id FROM revoked_participants WHERE workshop_id = ?", (workshop_id,))
    return frozenset(pid for (pid,) in rows)


def claim_epoch(conn: sqlite3.Connection, workshop_id: str) -> int:
    row = conn.execute(
        "INSERT INTO workshop_epochs (workshop_id, epoch) VALUES (?, 1) "
        "ON CONFLICT (workshop_id) DO UPDATE SET epoch = epoch + 1 RETURNING epoch",
        (workshop_id,),
    ).fetchall()[0]  # fetchall: a RETURNING statement must finish before COMMIT
    return int(row[0])


def current_epoch(conn: sqlite3.Connection, workshop_id: str) -> int:
    row = conn.execute("SELECT epoch FROM workshop_epochs WHERE workshop_id = ?", (workshop_id,)).fetchone()
    return int(row[0]) if row else 0
