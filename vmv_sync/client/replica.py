"""The client's durable local replica, kept with the server's own storage code.

Two logs live in one :class:`~vmv_sync.storage.Store` (a local SQLite file):

* the *replica log*, keyed by the workshop id: every update the replica holds that
  is not a pending local edit (updates from the server, and local edits once the
  server confirmed them). It is compacted locally, exactly like the server does,
  into a snapshot of the whole document once it grows.
* the *pending log*, keyed ``"<workshop id>~pending"``: one row per local action,
  committed before the action returns. A row carries the action's intent (name and
  JSON arguments, when it was a typed action) and the Yjs update it made, or no
  update while the action is *held* (its container has not arrived yet; see
  client/intents.py). Applying a held intent later appends a second row with the
  same intent id and the update; the first row is then *superseded*. Re-making
  rows (after a refused client id or edit) appends, in one commit, a *drop* row
  naming the old rows and new held rows with their intents.

A row leaves the log once the server has confirmed it (its update is first
appended to the replica log), or once it was superseded or dropped: the log is
compacted past the longest such prefix. A crash between the two steps only leaves
a row in both logs, which Yjs's idempotent updates make harmless.

The pending set is therefore *persisted*, not recomputed: after a restart,
pending = the rows not confirmed, superseded or dropped. Data safety never depends
on this bookkeeping: the sync handshake sends the server everything its state
vector lacks. Stores written before the pending log had a ``~outbox`` log of raw
updates; its rows are moved into the pending log on load (as edits without intent).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio
from pycrdt import merge_updates

from ..errors import ClientError
from ..protocol import EMPTY_UPDATE
from ..storage import SQLiteStore, Store, StoredDoc
from ..storage.rules import compaction_due
from .intents import Intent

__all__ = ("LocalReplica", "Row", "OUTBOX_SUFFIX", "PENDING_SUFFIX")

logger = logging.getLogger(__name__)

#: The key of the raw-update outbox of stores written by earlier versions.
OUTBOX_SUFFIX = "~outbox"
#: The pending log's key in the store is the workshop id plus this suffix.
PENDING_SUFFIX = "~pending"
_VERSION = b"\x01"


@dataclass(frozen=True)
class Row:
    """One row of the pending log (see the module docstring)."""

    seq: int
    #: ties a held row to the row that applied it; None for edits without intent
    intent_id: str | None
    intent: Intent | None
    #: the Yjs update the action made; None while the action is held
    update: bytes | None
    #: seqs of earlier rows this row drops (refused or re-made)
    drops: tuple[int, ...] = ()
    #: position among held intents: a re-made intent keeps its original row's place
    order: int = 0

    @property
    def place(self) -> int:
        return self.order or self.seq


def _encode(
    intent_id: str | None, intent: Intent | None, update: bytes | None, drops: Sequence[int] = (), order: int = 0
) -> bytes:
    header: dict[str, object] = {"i": intent_id, "intent": intent.to_json() if intent else None}
    if update is None:
        header["held"] = True
    if drops:
        header["drops"] = list(drops)
    if order:
        header["o"] = order
    raw = json.dumps(header, separators=(",", ":")).encode()
    return _VERSION + len(raw).to_bytes(4, "big") + raw + (update or b"")


def _decode(seq: int, blob: bytes) -> Row:
    if blob[:1] != _VERSION or len(blob) < 5:
        raise ClientError(f"pending row {seq} has an unknown format")
    size = int.from_bytes(blob[1:5], "big")
    header = json.loads(blob[5 : 5 + size])
    intent = Intent.from_json(header["intent"]) if header.get("intent") else None
    update = None if header.get("held") else blob[5 + size :]
    return Row(seq, header.get("i"), intent, update, tuple(header.get("drops") or ()), int(header.get("o") or 0))


def _parts(stored: StoredDoc) -> list[bytes]:
    """A stored log as the updates to apply in order: its snapshot, then its updates."""
    return [stored.snapshot, *stored.updates] if stored.snapshot else list(stored.updates)


class LocalReplica:
    """Durable replica log plus pending log of one workshop; see the module docstring.

    Args:
        workshop_id: the workshop.
        path: the local SQLite file (created if missing), or
        store: an already-constructed store (not entered; this object enters it).
        compact_updates: compact the replica log once this many rows follow its snapshot.
        compact_bytes: ... or once they weigh this many bytes.
    """

    def __init__(
        self,
        workshop_id: str,
        *,
        path: str | os.PathLike[str] | None = None,
        store: Store | None = None,
        compact_updates: int = 500,
        compact_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        if (path is None) == (store is None):
            raise ValueError("give exactly one of path= or store=")
        self.workshop_id = workshop_id
        self.pending_key = workshop_id + PENDING_SUFFIX
        self._store: Store = store if store is not None else SQLiteStore(path)  # type: ignore[arg-type]
        self._compact_updates = compact_updates
        self._compact_bytes = compact_bytes
        self._stack = AsyncExitStack()
        #: every row still stored, by seq
        self._rows: dict[int, Row] = {}
        #: applied rows the server has not confirmed
        self._pending: set[int] = set()
        #: held rows not yet applied, by intent id
        self._held: dict[str, Row] = {}
        #: rows excluded from sending: set aside by a rebuild until the next sync
        self._suspect: set[int] = set()
        #: rows a drop row named: never moved into the replica log
        self._dropped: set[int] = set()
        self._replica_seq = 0
        self._since_snapshot = 0
        self._bytes_since_snapshot = 0
        self._lock = anyio.Lock()
        self._compacting = False
        #: local compactions of the replica log done (metrics, tests)
        self.compactions = 0

    async def __aenter__(self) -> LocalReplica:
        await self._stack.enter_async_context(self._store)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    # -- reading -----------------------------------------------------------------

    async def load(self) -> list[bytes]:
        """Everything stored, as updates to apply in order (replica, then pending rows)."""
        await self._migrate_outbox()
        _, stored = await self._store.history(self.pending_key)
        for item in stored:
            self._take(_decode(item.seq, item.update))
        return [*await self.load_replica(), *(u for _, u in self.pending())]

    async def load_replica(self) -> list[bytes]:
        """The replica log only (server state and confirmed edits), as updates in order."""
        replica = await self._store.load(self.workshop_id)
        self._replica_seq = replica.last_seq
        self._since_snapshot = replica.update_count
        self._bytes_since_snapshot = replica.update_bytes
        parts = _parts(replica)
        logger.info(
            "workshop=%s local replica: %d replica rows, %d pending edits, %d held intents",
            self.workshop_id, replica.update_count, len(self._pending), len(self._held),
        )  # fmt: skip
        return parts

    async def _migrate_outbox(self) -> None:
        key = self.workshop_id + OUTBOX_SUFFIX
        _, old = await self._store.history(key)
        rows = [r for r in old if r.update != EMPTY_UPDATE]
        if not rows:
            return
        await self._store.append(self.pending_key, [_encode(None, None, r.update) for r in rows])
        await self._store.compact(key, EMPTY_UPDATE, rows[-1].seq)
        logger.info("workshop=%s moved %d rows of the old outbox to the pending log", self.workshop_id, len(rows))

    def _take(self, row: Row) -> None:
        self._rows[row.seq] = row
        if row.drops:
            for seq in row.drops:
                self._pending.discard(seq)
                self._dropped.add(seq)
                dropped = self._rows.get(seq)
                if dropped is not None and dropped.intent_id is not None:
                    self._held.pop(dropped.intent_id, None)
            return
        if row.update is None:
            if row.intent_id is not None:
                self._held[row.intent_id] = row
        else:
            if row.intent_id is not None:
                self._held.pop(row.intent_id, None)
            self._pending.add(row.seq)

    @property
    def pending_count(self) -> int:
        """Local actions the server has not confirmed: applied and unconfirmed, or held."""
        return len(self._pending) + len(self._held)

    def pending(self) -> list[tuple[int, bytes]]:
        """The unconfirmed applied edits as (seq, update), oldest first, suspects excluded."""
        return [(s, self._rows[s].update or b"") for s in sorted(self._pending - self._suspect)]

    def pending_rows(self) -> list[Row]:
        """Every unconfirmed applied row, oldest first (suspects included)."""
        return [self._rows[s] for s in sorted(self._pending)]

    def held(self) -> list[Row]:
        """Held intents, oldest first."""
        return sorted(self._held.values(), key=lambda r: r.place)

    def is_pending(self, seq: int) -> bool:
        return seq in self._pending

    def set_suspect(self, seqs: Iterable[int]) -> None:
        """Exclude these rows from :meth:`pending` (what a session sends) until cleared."""
        self._suspect = set(seqs)

    # -- writing -----------------------------------------------------------------

    async def add_local(self, update: bytes, intent: Intent | None = None, intent_id: str | None = None) -> int:
        """Commit an applied local edit; returns its seq once durable."""
        if intent is not None and intent_id is None:
            intent_id = uuid.uuid4().hex
        blob = _encode(intent_id, intent, update)
        seq = await self._store.append(self.pending_key, [blob])
        self._take(Row(seq, intent_id, intent, update))
        return seq

    async def hold(self, intent: Intent) -> Row:
        """Commit a held intent (no update yet); returns its row once durable."""
        intent_id = uuid.uuid4().hex
        seq = await self._store.append(self.pending_key, [_encode(intent_id, intent, None)])
        row = Row(seq, intent_id, intent, None)
        self._take(row)
        return row

    async def remake(self, drop: Sequence[int], intents: Sequence[tuple[Intent, int]]) -> None:
        """In one commit: drop rows (refused or re-made) and hold ``intents`` anew.

        ``intents`` pairs each intent with its place (the seq of the row it re-makes),
        so that re-made intents apply before any held since.
        """
        if not drop and not intents:
            return
        blobs = [_encode(None, None, b"", drops=drop)] if drop else []
        ids = [uuid.uuid4().hex for _ in intents]
        blobs.extend(_encode(i, intent, None, order=place) for i, (intent, place) in zip(ids, intents, strict=True))
        last = await self._store.append(self.pending_key, blobs)
        first = last - len(blobs) + 1
        if drop:
            self._take(Row(first, None, None, b"", tuple(drop)))
        for offset, (intent_id, (intent, place)) in enumerate(zip(ids, intents, strict=True)):
            seq = first + (1 if drop else 0) + offset
            self._take(Row(seq, intent_id, intent, None, (), place))
        self._suspect -= set(drop)

    async def add_remote(self, update: bytes) -> None:
        """Commit an update received from the server (already applied to the doc)."""
        self._replica_seq = await self._store.append(self.workshop_id, [update])
        self._since_snapshot += 1
        self._bytes_since_snapshot += len(update)
        await self._maybe_compact()

    def confirm(self, seqs: Iterable[int]) -> int:
        """Mark local edits as confirmed by the server; returns how many were pending.

        Takes effect at once in :attr:`pending_count`; call :meth:`persist_confirmed`
        to make it durable.
        """
        before = len(self._pending)
        self._pending.difference_update(seqs)
        return before - len(self._pending)

    def _done(self, row: Row) -> bool:
        if row.update is None:  # held: done once applied (superseded) or dropped
            return row.intent_id is None or row.intent_id not in self._held
        return row.seq not in self._pending

    async def persist_confirmed(self) -> None:
        """Move the confirmed prefix of the pending log into the replica log."""
        async with self._lock:
            moved: list[int] = []
            for seq in sorted(self._rows):
                if not self._done(self._rows[seq]):
                    break
                moved.append(seq)
            if not moved:
                return
            updates = [
                u
                for s in moved
                if (u := self._rows[s].update) and s not in self._dropped and u != EMPTY_UPDATE
            ]
            if updates:
                merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
                self._replica_seq = await self._store.append(self.workshop_id, [merged])
                self._since_snapshot += 1
                self._bytes_since_snapshot += len(merged)
            await self._store.compact(self.pending_key, EMPTY_UPDATE, moved[-1])
            for seq in moved:
                del self._rows[seq]
                self._dropped.discard(seq)
            logger.debug("workshop=%s moved %d settled pending rows", self.workshop_id, len(moved))
            await self._maybe_compact()

    async def _maybe_compact(self) -> None:
        """Fold the replica log into one snapshot once it grew past the thresholds.

        The snapshot is merged from the log's own rows, not taken from the document:
        the document also holds pending edits, and the replica log must hold only
        server state and confirmed edits, so that a recovery can rebuild from it
        without edits the server may have refused.
        """
        if self._compacting or not compaction_due(
            self._since_snapshot, self._bytes_since_snapshot,
            max_updates=self._compact_updates, max_bytes=self._compact_bytes,
        ):  # fmt: skip
            return
        self._compacting = True
        try:
            stored = await self._store.load(self.workshop_id)
            parts = _parts(stored)
            if len(parts) < 2:
                return
            state = merge_updates(*parts)
            await self._store.compact(self.workshop_id, state, stored.last_seq)
        finally:
            self._compacting = False
        self._since_snapshot = max(0, self._since_snapshot - stored.update_count)
        self._bytes_since_snapshot = max(0, self._bytes_since_snapshot - stored.update_bytes)
        self.compactions += 1
        logger.info(
            "workshop=%s local replica compacted %d rows into %d bytes",
            self.workshop_id,
            stored.update_count,
            len(state),
        )
