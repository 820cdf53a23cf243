"""The storage contract suite, run over every backend (memory, sqlite, postgres).

Compaction tests rebuild real pycrdt documents and compare their CONTENT (see
helpers.py). The two-instance tests are in test_two_instances.py.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from vmv_sync.storage import Store, StoredDoc

from .helpers import Editor, FakeClock, content, rebuild, reload

pytestmark = pytest.mark.anyio


# -- contract: append and load ------------------------------------------------------


async def test_empty_workshop_loads_empty(store: Store) -> None:
    assert await store.load("nobody") == StoredDoc(None, (), 0)
    assert await store.history("nobody") == (None, [])
    assert await store.stats("nobody") == (0, 0)
    assert await store.list_workshops() == []


async def test_append_then_load_in_order(store: Store) -> None:
    assert await store.append("w1", [b"a", b"b"]) == 2
    assert await store.append("w2", [b"x"]) == 1
    assert await store.append("w1", [b"c"]) == 3
    assert await store.load("w1") == StoredDoc(None, (b"a", b"b", b"c"), 3)
    assert await store.load("w2") == StoredDoc(None, (b"x",), 1)
    assert [w.workshop_id for w in await store.list_workshops()] == ["w1", "w2"]


async def test_append_rejects_non_bytes(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.append("w", b"not-a-list")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await store.append("w", ["text"])  # type: ignore[list-item]
    assert await store.load("w") == StoredDoc(None, (), 0)


async def test_empty_append_returns_current_seq(store: Store) -> None:
    await store.append("w", [b"a", b"b"])
    assert await store.append("w", []) == 2


async def test_seq_strictly_increases_across_compaction(store: Store) -> None:
    seqs = [await store.append("w", [b"u%d" % i]) for i in range(5)]
    await store.compact("w", b"S5", 5)
    seqs += [await store.append("w", [b"u%d" % i]) for i in range(5, 8)]
    await store.compact("w", b"S8", 8)
    seqs.append(await store.append("w", [b"u8"]))
    assert seqs == list(range(1, 10))
    assert await store.load("w") == StoredDoc(b"S8", (b"u8",), 9)
    _, kept = await store.history("w")
    assert [u.seq for u in kept] == [9]


async def test_stale_or_future_compaction(store: Store) -> None:
    for i in range(4):
        await store.append("w", [b"u%d" % i])
    await store.compact("w", b"S3", 3)
    await store.compact("w", b"OLD", 2)  # older than the stored snapshot: ignored
    assert await store.load("w") == StoredDoc(b"S3", (b"u3",), 4)
    with pytest.raises(ValueError):
        await store.compact("w", b"FUTURE", 5)
    with pytest.raises(ValueError):
        await store.compact("nobody", b"X", 1)


async def test_stats_list_and_delete(store: Store, clock: FakeClock) -> None:
    await store.append("w", [b"aa", b"bbb"])
    clock.now += 10
    await store.append("w", [b"c"])
    assert await store.stats("w") == (3, 6)
    await store.compact("w", b"SNAP", 2)
    assert await store.stats("w") == (1, 1)
    (info,) = await store.list_workshops()
    assert (info.workshop_id, info.updates, info.bytes, info.snapshot_bytes) == ("w", 1, 1, 4)
    assert info.last_activity == clock.now
    await store.delete("w")
    assert await store.load("w") == StoredDoc(None, (), 0)
    assert await store.list_workshops() == []
    assert await store.append("w", [b"again"]) == 1  # a deleted workshop starts afresh


async def test_clock_stepping_backwards_hides_nothing(store: Store, clock: FakeClock) -> None:
    editor = Editor(seed=1)
    for step in range(60):
        # the wall clock jumps back an hour every 20 updates (NTP, VM restore...)
        clock.now += -3600 if step % 20 == 19 else 1
        for update in editor.edit():
            await store.append("w", [update])
    stored = await store.load("w")
    assert reload(stored) == content(editor.doc)
    _, updates = await store.history("w")
    assert [u.seq for u in updates] == list(range(1, stored.last_seq + 1))
    # a history window computed from a clock that went back keeps more, never less
    await store.compact("w", editor.doc.get_update(), stored.last_seq, keep_history_seconds=30)
    assert reload(await store.load("w")) == content(editor.doc)
    base, kept = await store.history("w")
    assert content(rebuild(base, [u.update for u in kept])) == content(editor.doc)


# -- contract: compaction with real documents -------------------------------------


async def test_compaction_keeps_content(store: Store) -> None:
    editor = Editor(seed=2)
    last = 0
    for _ in range(300):
        for update in editor.edit():
            last = await store.append("w", [update])
    before = content(editor.doc)
    assert before["t"] and before["m"]
    await store.compact("w", editor.doc.get_update(), last)
    after_compaction = await store.load("w")
    assert after_compaction.updates == ()
    assert reload(after_compaction) == before
    # edits after the snapshot are applied on top of it
    for _ in range(50):
        for update in editor.edit():
            last = await store.append("w", [update])
    stored = await store.load("w")
    assert stored.last_seq == last and stored.update_count > 0
    assert reload(stored) == content(editor.doc)
    # a second compaction merges the old snapshot's content
    await store.compact("w", editor.doc.get_update(), last)
    assert reload(await store.load("w")) == content(editor.doc)


async def test_compaction_during_concurrent_appends_loses_nothing(store: Store) -> None:
    """The room rule: read the last seq applied, then take ``doc.get_update()``."""
    editor = Editor(seed=3)
    applied_seq = 0
    compactions = 0
    done = anyio.Event()

    async def writer(n: int) -> None:
        nonlocal applied_seq
        for _ in range(n):
            updates = editor.edit()  # applied to the room's doc first ...
            if updates:
                seq = await store.append("w", updates)  # ... then stored
                applied_seq = max(applied_seq, seq)
            await anyio.lowlevel.checkpoint()

    async def compactor() -> None:
        nonlocal compactions
        while not done.is_set():
            upto = applied_seq  # both captured with no await in between
            snapshot = editor.doc.get_update()
            if upto:
                await store.compact("w", snapshot, upto)
                compactions += 1
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(compactor)
        async with anyio.create_task_group() as writers:
            for _ in range(10):
                writers.start_soon(writer, 40)
        done.set()
    assert compactions > 1
    assert reload(await store.load("w")) == content(editor.doc)


async def test_history_window_keeps_recent_covered_updates(store: Store, clock: FakeClock) -> None:
    editor = Editor(seed=4)
    states: dict[int, dict[str, Any]] = {}
    last = 0
    for _ in range(100):
        clock.now += 1  # one update a second: seq k stored at t0 + k
        for update in editor.edit():
            last = await store.append("w", [update])
            states[last] = content(editor.doc)
    # covered: everything; window: the last 30 seconds
    await store.compact("w", editor.doc.get_update(), last, keep_history_seconds=30)
    stored = await store.load("w")
    assert stored.updates == () and reload(stored) == content(editor.doc)  # load skips covered
    base, kept = await store.history("w")
    assert base is None  # no full state exists before the window yet: nothing deleted
    assert [u.seq for u in kept] == list(range(1, last + 1))

    for _ in range(100):
        clock.now += 1
        for update in editor.edit():
            last = await store.append("w", [update])
            states[last] = content(editor.doc)
    first_snapshot_seq = stored.last_seq
    await store.compact("w", editor.doc.get_update(), last, keep_history_seconds=30)
    base, kept = await store.history("w")
    # the window starts inside the second stretch: the base is the first snapshot
    assert base is not None and kept[0].seq == first_snapshot_seq + 1
    assert all(u.stored_at <= clock.now for u in kept)
    assert [u.seq for u in kept] == list(range(kept[0].seq, last + 1))
    # every state from the base onwards can be rebuilt
    doc = rebuild(base, [])
    for u in kept:
        doc.apply_update(u.update)
        assert content(doc) == states[u.seq]
    # a compaction with no window drops the history
    clock.now += 1
    last = await store.append("w", editor.edit() or [b"\x00\x00"])
    await store.compact("w", editor.doc.get_update(), last)
    base, kept = await store.history("w")
    assert kept == [] and base is not None
    assert content(rebuild(base, [])) == content(editor.doc)
