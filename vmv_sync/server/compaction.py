"""A room's compaction: fold its update log into a snapshot once it grows, off the update path.

The policy is :func:`vmv_sync.storage.rules.compaction_due` (shared with the client's
replica). The snapshot and its sequence number are taken together between two batches
of the room's pipeline; the store write runs as a task of the room, so commits go on
meanwhile (the store keeps every update after the snapshot's sequence number).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from anyio.abc import TaskGroup
from pycrdt import Doc

from ..config import Settings
from ..errors import VmvSyncError
from ..storage import Store
from ..storage.rules import compaction_due
from .metrics import Metrics, measured

__all__ = ("Compactor",)

logger = logging.getLogger(__name__)


class Compactor:
    """Counts what follows the latest snapshot and compacts one workshop when due."""

    def __init__(self, workshop_id: str, store: Store, settings: Settings, metrics: Metrics | None = None) -> None:
        self.workshop_id = workshop_id
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.since_snapshot = 0
        self.bytes_since_snapshot = 0
        #: seconds spent integrating the updates that follow the snapshot (at load and
        #: since): a log that is costly to integrate is compacted even when it is small,
        #: since a snapshot of the same document loads in a fraction of that time
        #: (issue 19: 2.2 s of adversarial updates, 89 ms as a snapshot)
        self.work_since_snapshot = 0.0
        self.running = False
        #: size of the latest snapshot
        self.snapshot_bytes = 0
        #: told how many stored bytes a finished compaction gave back (the quota's measure)
        self.on_freed: Callable[[int], None] | None = None

    def loaded(self, updates: int, size: int, work: float = 0.0, snapshot_bytes: int = 0) -> None:
        self.since_snapshot, self.bytes_since_snapshot = updates, size
        self.work_since_snapshot = work
        self.snapshot_bytes = snapshot_bytes

    def appended(self, updates: int, size: int, work: float = 0.0) -> None:
        self.since_snapshot += updates
        self.bytes_since_snapshot += size
        self.work_since_snapshot += work

    def due(self) -> bool:
        s = self.settings
        if self.since_snapshot and self.work_since_snapshot >= s.compact_work_seconds:
            return True
        return compaction_due(
            self.since_snapshot, self.bytes_since_snapshot, max_updates=s.compact_updates, max_bytes=s.compact_bytes
        )

    def maybe_start(self, tg: TaskGroup, doc: Doc[Any], last_seq: int) -> None:
        """Start a compaction in ``tg`` if one is due and none is running."""
        if self.running or not self.due():
            return
        self.running = True
        work = self.work_since_snapshot
        tg.start_soon(self._compact, doc.get_update(), last_seq, self.since_snapshot, self.bytes_since_snapshot, work)

    async def _compact(self, snapshot: bytes, upto: int, count: int, size: int, work: float = 0.0) -> None:
        started = time.perf_counter()
        try:
            with measured(self.metrics, "compact"):
                await self.store.compact(
                    self.workshop_id, snapshot, upto, keep_history_seconds=self.settings.history_seconds
                )
        except VmvSyncError:
            logger.exception("workshop=%s compaction failed; will retry later", self.workshop_id)
            return
        finally:
            self.running = False
        self.since_snapshot -= count
        self.bytes_since_snapshot -= size
        self.work_since_snapshot = max(0.0, self.work_since_snapshot - work)
        freed = self.snapshot_bytes + size - len(snapshot)
        self.snapshot_bytes = len(snapshot)
        if self.on_freed is not None:
            # the store now holds the new snapshot instead of the old one and the covered updates
            self.on_freed(freed)
        logger.info(
            "workshop=%s compacted %d updates into %d bytes in %.1f ms",
            self.workshop_id, count, len(snapshot), (time.perf_counter() - started) * 1000,
        )  # fmt: skip
