"""The SQLite store's writes: the group-commit batch, compaction and delete.

Each function runs inside a ``BEGIN IMMEDIATE`` transaction the caller opened on the
writer connection (under the writer's limiter, so they serialise with each other);
the caller commits, or rolls back when one raises.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import StorageError
from ..groupcommit import PendingAppend
from ..refusals import ClaimConflict, StaleEpoch
from ..rules import history_boundary

__all__ = ("commit_batch", "compact", "delete")

logger = logging.getLogger(__name__)

#: rows per multi-row INSERT: 4 parameters each, well under SQLite's 32766 limit
_ROWS_PER_INSERT = 500


def _insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]], tail: str = "") -> None:
    """``head`` + one ``VALUES`` group per row + ``tail``, in statements of at most
    ``_ROWS_PER_INSERT`` rows (each statement is one GIL round trip, not one per row)."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[start : start + _ROWS_PER_INSERT]
        group = "(" + ", ".join("?" * len(part[0])) + ")"
        conn.execute(head + ",".join([group] * len(part)) + tail, [value for row in part for value in row])


def _refusal(
    conn: sqlite3.Connection, request: PendingAppend, claimed: dict[tuple[str, int], tuple[str, int, str, float]]
) -> StorageError | None:
    """Why ``request`` must be refused alone (a stale epoch, a claim held by another), or None.

    Runs only for requests with an epoch or claims, so plain appends cost nothing.
    Claims made earlier in the same batch count as held (the first in the batch wins).
    """
    wid = request.workshop_id
    if request.epoch is not None:
        row = conn.execute("SELECT epoch FROM workshop_epochs WHERE workshop_id = ?", (wid,)).fetchone()
        if row is not None and row[0] > request.epoch:
            return StaleEpoch(wid, request.epoch, row[0])
    if request.claims:
        ids = list(request.claims)
        held = dict(
            conn.execute(
                f"SELECT client_id, owner FROM client_ids WHERE workshop_id = ? AND client_id IN ({','.join('?' * len(ids))})",
                [wid, *ids],
            ).fetchall()
        )
        for cid, owner in request.claims.items():
            earlier = claimed.get((wid, cid))
            holder = earlier[2] if earlier is not None else held.get(cid)
            if holder is not None and holder != owner:
                return ClaimConflict(wid, cid, holder, owner)
    return None


def commit_batch(
    conn: sqlite3.Connection, batch: list[PendingAppend], now: float, seq_cache: dict[str, int]
) -> list[int | StorageError]:
    """Insert a whole group-commit batch in as few statements as possible.

    Why few statements: this runs in a worker thread that must win the GIL back from
    a busy event loop after every SQLite call, so a statement per row (or per room)
    turns one commit into a convoy. Rows go in multi-row INSERTs, and the per-workshop
    sequence numbers come from ``seq_cache``, read from the table only on a miss. The
    cache is valid while this connection is the only writer: the caller clears it
    when ``PRAGMA data_version`` says another connection (another store instance,
    the CLI) committed, and when the transaction does not commit. A request refused
    alone (:func:`_refusal`) gets its error in the result and stores nothing.
    """
    last: dict[str, int] = {}
    seqs: list[int | StorageError] = []
    rows: list[tuple[str, int, bytes, float]] = []
    claimed: dict[tuple[str, int], tuple[str, int, str, float]] = {}
    for request in batch:
        wid = request.workshop_id
        refusal = _refusal(conn, request, claimed) if request.claims or request.epoch is not None else None
        if refusal is not None:
            seqs.append(refusal)
            continue
        seq = last.get(wid)
        if seq is None:
            seq = seq_cache.get(wid)
        if seq is None:
            row = conn.execute("SELECT last_seq FROM workshops WHERE workshop_id = ?", (wid,)).fetchone()
            seq = row[0] if row else 0
        rows.extend((wid, seq + i, data, now) for i, data in enumerate(request.updates, 1))
        seq += len(request.updates)
        last[wid] = seq
        seqs.append(seq)
        if request.claims:
            for cid, owner in request.claims.items():
                claimed.setdefault((wid, cid), (wid, cid, owner, now))
    if rows:
        _insert_rows(conn, "INSERT INTO updates (workshop_id, seq, data, stored_at) VALUES ", rows)
    if claimed:
        _insert_rows(
            conn,
            "INSERT INTO client_ids (workshop_id, client_id, owner, claimed_at) VALUES ",
            list(claimed.values()),
            " ON CONFLICT (workshop_id, client_id) DO NOTHING",  # held by the same owner already
        )
    if last:
        _insert_rows(
            conn,
            "INSERT INTO workshops (workshop_id, last_seq, created_at, last_activity) VALUES ",
            [(wid, seq, now, now) for wid, seq in last.items()],
            """ ON CONFLICT (workshop_id) DO UPDATE
               SET last_seq = excluded.last_seq, last_activity = excluded.last_activity""",
        )
    seq_cache.update(last)
    return seqs


def compact(
    conn: sqlite3.Connection,
    workshop_id: str,
    snapshot: bytes,
    upto_seq: int,
    keep_history_seconds: float,
    clock: Callable[[], float],
) -> None:
    """Store ``snapshot`` as the state up to ``upto_seq`` and delete what it covers.

    The history window and the two-snapshot rule are docs/storage.md's "History
    window"; :func:`~vmv_sync.storage.rules.history_boundary` decides the boundary.
    Client-id claims are not touched.
    """
    row = conn.execute(
        "SELECT last_seq, history_from FROM workshops WHERE workshop_id = ?", (workshop_id,)
    ).fetchone()
    last_seq, history_from = row if row else (0, 0)
    if upto_seq < 0 or upto_seq > last_seq:
        raise ValueError(
            f"workshop {workshop_id!r}: cannot compact up to seq {upto_seq}, last committed seq is {last_seq}"
        )
    kept = [s for (s,) in conn.execute("SELECT upto_seq FROM snapshots WHERE workshop_id = ?", (workshop_id,))]
    if row is None or upto_seq <= max(kept, default=0):
        logger.debug("workshop %s: stale compaction to %d ignored", workshop_id, upto_seq)
        return
    now = clock()
    first_in_window = None
    if keep_history_seconds > 0:
        first_in_window = conn.execute(
            "SELECT MIN(seq) FROM updates WHERE workshop_id = ? AND seq > ? AND seq <= ? AND stored_at > ?",
            (workshop_id, history_from, upto_seq, now - keep_history_seconds),
        ).fetchone()[0]
    new_from = history_boundary(history_from, kept, upto_seq, first_in_window)
    conn.execute(
        "INSERT INTO snapshots (workshop_id, upto_seq, data, created_at) VALUES (?, ?, ?, ?)",
        (workshop_id, upto_seq, snapshot, now),
    )
    conn.execute(
        "DELETE FROM snapshots WHERE workshop_id = ? AND upto_seq NOT IN (?, ?)",
        (workshop_id, new_from, upto_seq),
    )
    deleted = conn.execute(
        "DELETE FROM updates WHERE workshop_id = ? AND seq <= ?", (workshop_id, new_from)
    ).rowcount
    conn.execute("UPDATE workshops SET history_from = ? WHERE workshop_id = ?", (new_from, workshop_id))
    logger.info(
        "workshop %s: compacted to seq %d (%d bytes), deleted %d updates, history from %d",
        workshop_id, upto_seq, len(snapshot), deleted, new_from,
    )  # fmt: skip


def delete(conn: sqlite3.Connection, workshop_id: str) -> None:
    """Forget every row of the workshop, its claims and invite included.

    Revocations and the fencing epoch stay: a removed participant's tokens must not
    come back, and an epoch must never go backwards.
    """
    for table in ("updates", "snapshots", "client_ids", "workshop_access", "workshops"):
        conn.execute(f"DELETE FROM {table} WHERE workshop_id = ?", (workshop_id,))
    logger.info("workshop %s: deleted", workshop_id)
