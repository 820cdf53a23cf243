"""A room's compaction: fold its update log into a snapshot once it grows, off the update path.

The policy is :func:`vmv_sync.storage.rules.compaction_due` (shared with the client's
replica). The snapshot and its sequence number are taken together between two batches
of the room's pipeline; the store write runs as a task of the room, so commits go on
meanwhile (the store keeps every update after the snapshot's sequence number).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from anyio.abc import TaskGroup
from pycrdt import Doc

from ..config import Settings
from ..errors import VmvSyncError
from ..storage import Store
from ..storage.rules import compaction_due

__all__ = ("Compactor",)

logger = logging.getLogger(__name__)


class Compactor:
    """Counts what follows the latest snapshot and compacts one workshop when due."""

    def __init__(self, workshop_id: str, store: Store, settings: Settings) -> None:
        self.workshop_id = workshop_id
        self.store = store
        self.settings = settings
        self.since_snapshot = 0
        self.bytes_since_snapshot = 0
        self.running = False

    def loaded(self, updates: int, size: int) -> None:
        self.since_snapshot, self.bytes_since_snapshot = updates, size

    def appended(self, updates: int, size: int) -> None:
        self.since_snapshot += updates
        self.bytes_since_snapshot += size

    def maybe_start(self, tg: TaskGroup, doc: Doc[Any], last_seq: int) -> None:
        """Start a compaction in ``tg`` if one is due and none is running."""
        s = self.settings
        if self.running or not compaction_due(
            self.since_snapshot, self.bytes_since_snapshot, max_updates=s.compact_updates, max_bytes=s.compact_bytes
        ):
            return
        self.running = True
        tg.start_soon(self._compact, doc.get_update(), last_seq, self.since_snapshot, self.bytes_since_snapshot)

    async def _compact(self, snapshot: bytes, upto: int, count: int, size: int) -> None:
        started = time.perf_counter()
        try:
            await self.store.compact(self.workshop_id, snapshot, upto, keep_history_seconds=self.settings.history_seconds)
        except VmvSyncError:
            logger.exception("workshop=%s compaction failed; will retry later", self.workshop_id)
            return
        finally:
            self.running = False
        self.since_snapshot -= count
        self.bytes_since_snapshot -= size
        logger.info(
            "workshop=%s compacted %d updates into %d bytes in %.1f ms",
            self.workshop_id, count, len(snapshot), (time.perf_counter() - started) * 1000,
        )  # fmt: skip
