"""The PostgreSQL store's statements other than the batch commit, as functions of a connection.

Each runs inside a transaction its caller opened (:meth:`PostgresStore._run`): reads
in one ``REPEATABLE READ`` read-only transaction, so the snapshot, the updates and
the claims come from one committed state even while another instance compacts;
writes lock the workshop's row first (``FOR UPDATE``), so a compaction serialises
with the batch commits and compactions of every instance on that workshop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from ...errors import StorageError
from ..base import Invite, StoredDoc, StoredUpdate, WorkshopInfo
from ..rules import history_boundary

__all__ = (
    "load", "history", "stats", "list_workshops", "compact", "delete",
    "get_or_create_secret", "create_invite", "set_invite", "get_invite", "revoke", "revoked",
    "claim_epoch", "current_epoch",
)  # fmt: skip

logger = logging.getLogger(__name__)

#: an asyncpg connection (typed loosely: asyncpg ships no type hints)
Conn = Any


async def _latest_snapshot(conn: Conn, workshop_id: str) -> tuple[int, bytes | None]:
    row = await conn.fetchrow(
        "SELECT upto_seq, data FROM snapshots WHERE workshop_id = $1 ORDER BY upto_seq DESC LIMIT 1", workshop_id
    )
    return (int(row[0]), bytes(row[1])) if row else (0, None)


async def load(conn: Conn, workshop_id: str) -> StoredDoc:
    last = await conn.fetchval("SELECT last_seq FROM workshops WHERE workshop_id = $1", workshop_id)
    if last is None:
        return StoredDoc(None, (), 0)
    top, snapshot = await _latest_snapshot(conn, workshop_id)
    rows = await conn.fetch("SELECT data FROM updates WHERE workshop_id = $1 AND seq > $2 ORDER BY seq", workshop_id, top)
    owners = await conn.fetch("SELECT client_id, owner FROM client_ids WHERE workshop_id = $1", workshop_id)
    return StoredDoc(
        snapshot,
        tuple(bytes(r[0]) for r in rows),
        int(last),
        MappingProxyType({int(r[0]): str(r[1]) for r in owners}),
    )


async def history(conn: Conn, workshop_id: str) -> tuple[bytes | None, list[StoredUpdate]]:
    start = await conn.fetchval("SELECT history_from FROM workshops WHERE workshop_id = $1", workshop_id)
    if start is None:
        return None, []
    base = None
    if start:
        base = await conn.fetchval(
            "SELECT data FROM snapshots WHERE workshop_id = $1 AND upto_seq = $2", workshop_id, start
        )
        if base is None:
            raise StorageError(f"workshop {workshop_id}: history base {start} missing")
        base = bytes(base)
    rows = await conn.fetch(
        "SELECT seq, data, stored_at FROM updates WHERE workshop_id = $1 AND seq > $2 ORDER BY seq", workshop_id, start
    )
    return base, [StoredUpdate(int(s), bytes(d), float(t)) for s, d, t in rows]


async def stats(conn: Conn, workshop_id: str) -> tuple[int, int]:
    row = await conn.fetchrow(
        """SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM updates
           WHERE workshop_id = $1 AND seq > (SELECT COALESCE(MAX(upto_seq), 0) FROM snapshots WHERE workshop_id = $1)""",
        workshop_id,
    )
    return int(row[0]), int(row[1])


async def list_workshops(conn: Conn) -> list[WorkshopInfo]:
    rows = await conn.fetch(
        """SELECT w.workshop_id,
            (SELECT COUNT(*) FROM updates u WHERE u.workshop_id = w.workshop_id),
            (SELECT COALESCE(SUM(LENGTH(u.data)), 0) FROM updates u WHERE u.workshop_id = w.workshop_id),
            (SELECT COALESCE(SUM(LENGTH(s.data)), 0) FROM snapshots s WHERE s.workshop_id = w.workshop_id),
            w.last_activity
        FROM workshops w ORDER BY w.workshop_id COLLATE "C"
        """
    )
    return [WorkshopInfo(str(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4]) for r in rows]


async def compact(
    conn: Conn, workshop_id: str, snapshot: bytes, upto_seq: int, keep_history_seconds: float, clock: Callable[[], float]
) -> None:
    """Store ``snapshot`` as the state up to ``upto_seq`` and delete only what it covers.

    Rows with ``seq > upto_seq`` (another instance may have appended them while the
    snapshot was built) are never deleted; the history rules are SQLite's
    (docs/storage.md, "History window").
    """
    row = await conn.fetchrow(
        "SELECT last_seq, history_from FROM workshops WHERE workshop_id = $1 FOR UPDATE", workshop_id
    )
    last_seq, history_from = (int(row[0]), int(row[1])) if row else (0, 0)
    if upto_seq < 0 or upto_seq > last_seq:
        raise ValueError(
            f"workshop {workshop_id!r}: cannot compact up to seq {upto_seq}, last committed seq is {last_seq}"
        )
    kept = [int(r[0]) for r in await conn.fetch("SELECT upto_seq FROM snapshots WHERE workshop_id = $1", workshop_id)]
    if row is None or upto_seq <= max(kept, default=0):
        logger.debug("workshop %s: stale compaction to %d ignored", workshop_id, upto_seq)
        return
    now = clock()
    first_in_window = None
    if keep_history_seconds > 0:
        first_in_window = await conn.fetchval(
            "SELECT MIN(seq) FROM updates WHERE workshop_id = $1 AND seq > $2 AND seq <= $3 AND stored_at > $4",
            workshop_id, history_from, upto_seq, now - keep_history_seconds,
        )  # fmt: skip
    new_from = history_boundary(history_from, kept, upto_seq, first_in_window)
    await conn.execute(
        "INSERT INTO snapshots (workshop_id, upto_seq, data, created_at) VALUES ($1, $2, $3, $4)",
        workshop_id, upto_seq, snapshot, now,
    )  # fmt: skip
    await conn.execute(
        "DELETE FROM snapshots WHERE workshop_id = $1 AND upto_seq <> $2 AND upto_seq <> $3",
        workshop_id, new_from, upto_seq,
    )  # fmt: skip
    status = await conn.execute("DELETE FROM updates WHERE workshop_id = $1 AND seq <= $2", workshop_id, new_from)
    await conn.execute("UPDATE workshops SET history_from = $2 WHERE workshop_id = $1", workshop_id, new_from)
    logger.info(
        "workshop %s: compacted to seq %d (%d bytes), %s, history from %d",
        workshop_id, upto_seq, len(snapshot), status.lower(), new_from,
    )  # fmt: skip


async def delete(conn: Conn, workshop_id: str) -> None:
    """Forget the workshop, claims and invite included; revocations and the epoch stay."""
    await conn.fetchval("SELECT 1 FROM workshops WHERE workshop_id = $1 FOR UPDATE", workshop_id)
    for table in ("updates", "snapshots", "client_ids", "workshop_access", "workshops"):
        await conn.execute(f"DELETE FROM {table} WHERE workshop_id = $1", workshop_id)
    logger.info("workshop %s: deleted", workshop_id)


# -- the directory and the epochs -------------------------------------------------------

_SECRET = "token_secret"


async def get_or_create_secret(conn: Conn, candidate: str) -> str:
    await conn.execute(
        "INSERT INTO store_settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", _SECRET, candidate
    )
    return str(await conn.fetchval("SELECT value FROM store_settings WHERE name = $1", _SECRET))


async def create_invite(conn: Conn, invite: Invite) -> Invite:
    status = await conn.execute(
        """INSERT INTO workshop_access (workshop_id, invite_code, facilitator_id, created_at)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        invite.workshop_id, invite.code, invite.facilitator_id, invite.created_at,
    )  # fmt: skip
    if status == "INSERT 0 0":
        raise StorageError(f"workshop {invite.workshop_id}: it already has an invite")
    return invite


async def set_invite(conn: Conn, workshop_id: str, code: str) -> bool:
    status = await conn.execute("UPDATE workshop_access SET invite_code = $2 WHERE workshop_id = $1", workshop_id, code)
    return bool(status != "UPDATE 0")


async def get_invite(conn: Conn, workshop_id: str) -> Invite | None:
    row = await conn.fetchrow(
        "SELECT workshop_id, invite_code, facilitator_id, created_at FROM workshop_access WHERE workshop_id = $1",
        workshop_id,
    )
    return Invite(str(row[0]), str(row[1]), str(row[2]), float(row[3])) if row else None


async def revoke(conn: Conn, workshop_id: str, participant_id: str, now: float) -> None:
    await conn.execute(
        """INSERT INTO revoked_participants (workshop_id, participant_id, revoked_at)
           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
        workshop_id, participant_id, now,
    )  # fmt: skip


async def revoked(conn: Conn, workshop_id: str) -> frozenset[str]:
    rows = await conn.fetch("SELECT participant_id FROM revoked_participants WHERE workshop_id = $1", workshop_id)
    return frozenset(str(r[0]) for r in rows)


async def claim_epoch(conn: Conn, workshop_id: str) -> int:
    """The next epoch; its row lock waits for a batch commit checking the old one (FOR SHARE)."""
    return int(
        await conn.fetchval(
            """INSERT INTO workshop_epochs (workshop_id, epoch) VALUES ($1, 1)
               ON CONFLICT (workshop_id) DO UPDATE SET epoch = workshop_epochs.epoch + 1 RETURNING epoch""",
            workshop_id,
        )
    )


async def current_epoch(conn: Conn, workshop_id: str) -> int:
    value = await conn.fetchval("SELECT epoch FROM workshop_epochs WHERE workshop_id = $1", workshop_id)
    return int(value) if value is not None else 0
