"""In-process tests of :class:`vmv_sync.server.compaction.Compactor` over a real MemoryStore."""

from __future__ import annotations

import anyio
import pytest
from pycrdt import Doc, Text

from vmv_sync.config import Settings
from vmv_sync.server.compaction import Compactor
from vmv_sync.storage import MemoryStore

pytestmark = pytest.mark.anyio


def updates(n: int) -> tuple[Doc, list[bytes]]:
    doc: Doc = Doc()
    text = doc.get("mission", type=Text)
    out = []
    for i in range(n):
        before = doc.get_state()
        text += str(i)
        out.append(doc.get_update(before))
    return doc, out


async def test_it_compacts_once_due_and_counts_what_is_left() -> None:
    settings = Settings(compact_updates=3)
    doc, log = updates(4)
    async with MemoryStore() as store:
        last_seq = await store.append("w", log[:3])
        compactor = Compactor("w", store, settings)
        freed: list[int] = []
        compactor.on_freed = freed.append
        compactor.loaded(updates=2, size=sum(len(u) for u in log[:2]))
        assert not compactor.due()
        compactor.appended(1, len(log[2]))
        assert compactor.due()
        async with anyio.create_task_group() as tg:
            compactor.maybe_start(tg, doc, last_seq)
            assert compactor.running
            compactor.maybe_start(tg, doc, last_seq)  # one at a time
            compactor.appended(1, len(log[3]))  # a commit while it runs
        assert not compactor.running and compactor.since_snapshot == 1
        assert compactor.bytes_since_snapshot == len(log[3]) and compactor.snapshot_bytes == len(doc.get_update())
        stored = await store.load("w")
        assert stored.snapshot == doc.get_update() and stored.updates == () and freed


async def test_costly_updates_are_due_however_few() -> None:
    compactor = Compactor("w", MemoryStore(), Settings(compact_updates=1000))
    compactor.loaded(updates=1, size=10, work=Settings().compact_work_seconds)
    assert compactor.due()
    compactor.loaded(updates=0, size=0, work=100.0)
    assert not compactor.due()  # nothing follows the snapshot: nothing to fold
