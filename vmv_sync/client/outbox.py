"""The client's durable local replica, kept with the server's own storage code.

Two logs live in one :class:`~vmv_sync.storage.Store` (a local SQLite file):

* the *replica log*, keyed by the workshop id: every update the replica holds that
  is not a pending local edit (updates from the server, and local edits once the
  server confirmed them). It is compacted locally, exactly like the server does,
  into a snapshot of the whole document once it grows.
* the *outbox*, keyed ``"<workshop id>~outbox"``: one row per local edit, appended
  (and committed) before the action returns. A row leaves the outbox once the
  server has confirmed it: it is first appended to the replica log (several
  merged into one update), then the outbox is compacted past it with an empty
  snapshot. A crash between the two steps only leaves a row in both logs, which
  Yjs's idempotent updates make harmless; it is then counted pending until the
  next connection confirms it again.

The pending set is therefore *persisted*, not recomputed: after a restart,
pending = the outbox rows. Confirmations are persisted up to the longest confirmed
prefix of outbox sequence numbers (in practice the server confirms in order).

Data safety never depends on this bookkeeping: the sync handshake sends the
server everything its state vector lacks, whether or not it is counted pending.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack

import anyio
from pycrdt import merge_updates

from ..storage import SQLiteStore, Store

__all__ = ("LocalReplica", "OUTBOX_SUFFIX")

logger = logging.getLogger(__name__)

#: The outbox's key in the store is the workshop id plus this suffix.
OUTBOX_SUFFIX = "~outbox"
_EMPTY_UPDATE = b"\x00\x00"


class LocalReplica:
    """Durable replica log plus outbox of one workshop; see the module docstring.

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
        self.outbox_key = workshop_id + OUTBOX_SUFFIX
        self._store: Store = store if store is not None else SQLiteStore(path)  # type: ignore[arg-type]
        self._compact_updates = compact_updates
        self._compact_bytes = compact_bytes
        self._stack = AsyncExitStack()
        #: outbox rows still stored (pending and confirmed-but-not-yet-moved), by seq
        self._outbox: dict[int, bytes] = {}
        #: outbox seqs the server has not confirmed
        self._pending: set[int] = set()
        self._replica_seq = 0
        self._since_snapshot = 0
        self._bytes_since_snapshot = 0
        self._lock = anyio.Lock()
        self._compacting = False
        #: local compactions of the replica log done (metrics, tests)
        self.compactions = 0

    async def __aenter__(self) -> LocalReplica:
        await self._stack.enter_async_context(self._store)  # type: ignore[arg-type]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    # -- reading -----------------------------------------------------------------

    async def load(self) -> list[bytes]:
        """Everything stored, as updates to apply in order (replica, then outbox)."""
        replica = await self._store.load(self.workshop_id)
        self._replica_seq = replica.last_seq
        self._since_snapshot = replica.update_count
        self._bytes_since_snapshot = replica.update_bytes
        _, rows = await self._store.history(self.outbox_key)
        self._outbox = {row.seq: row.update for row in rows}
        self._pending = set(self._outbox)
        parts = [replica.snapshot] if replica.snapshot else []
        parts.extend(replica.updates)
        parts.extend(self._outbox[s] for s in sorted(self._outbox))
        logger.info(
            "workshop=%s local replica loaded: %d replica rows, %d pending local edits",
            self.workshop_id,
            replica.update_count,
            len(self._pending),
        )
        return parts

    @property
    def pending_count(self) -> int:
        """Local edits the server has not confirmed as committed."""
        return len(self._pending)

    def pending(self) -> list[tuple[int, bytes]]:
        """The unconfirmed local edits as (outbox seq, update), oldest first."""
        return [(seq, self._outbox[seq]) for seq in sorted(self._pending)]

    def is_pending(self, seq: int) -> bool:
        return seq in self._pending

    # -- writing -----------------------------------------------------------------

    async def add_local(self, update: bytes) -> int:
        """Commit a local edit to the outbox; returns its outbox seq once durable."""
        seq = await self._store.append(self.outbox_key, [update])
        self._outbox[seq] = update
        self._pending.add(seq)
        return seq

    async def add_remote(self, update: bytes, snapshot: Callable[[], bytes]) -> None:
        """Commit an update received from the server (already applied to the doc).

        ``snapshot`` returns the doc's full state; it is called only to compact.
        """
        self._replica_seq = await self._store.append(self.workshop_id, [update])
        self._since_snapshot += 1
        self._bytes_since_snapshot += len(update)
        await self._maybe_compact(snapshot)

    def confirm(self, seqs: Iterable[int]) -> int:
        """Mark local edits as confirmed by the server; returns how many were pending.

        Takes effect at once in :attr:`pending_count`; call :meth:`persist_confirmed`
        to make it durable.
        """
        before = len(self._pending)
        self._pending.difference_update(seqs)
        return before - len(self._pending)

    async def persist_confirmed(self, snapshot: Callable[[], bytes]) -> None:
        """Move the confirmed prefix of the outbox into the replica log."""
        async with self._lock:
            moved = []
            for seq in sorted(self._outbox):
                if seq in self._pending:
                    break
                moved.append(seq)
            if not moved:
                return
            updates = [self._outbox[s] for s in moved]
            merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
            self._replica_seq = await self._store.append(self.workshop_id, [merged])
            self._since_snapshot += 1
            self._bytes_since_snapshot += len(merged)
            await self._store.compact(self.outbox_key, _EMPTY_UPDATE, moved[-1])
            for seq in moved:
                del self._outbox[seq]
            logger.debug(
                "workshop=%s moved %d confirmed local edits to the replica log",
                self.workshop_id,
                len(moved),
            )
            await self._maybe_compact(snapshot)

    async def _maybe_compact(self, snapshot: Callable[[], bytes]) -> None:
        if self._compacting or (
            self._since_snapshot < self._compact_updates
            and self._bytes_since_snapshot < self._compact_bytes
        ):
            return
        # Captured together: every replica row up to ``upto`` is already in the doc.
        upto, count, size = self._replica_seq, self._since_snapshot, self._bytes_since_snapshot
        state = snapshot()
        self._compacting = True
        try:
            await self._store.compact(self.workshop_id, state, upto)
        finally:
            self._compacting = False
        self._since_snapshot -= count
        self._bytes_since_snapshot -= size
        self.compactions += 1
        logger.info(
            "workshop=%s local replica compacted %d rows into %d bytes",
            self.workshop_id,
            count,
            len(state),
        )
