"""In-process tests of :class:`vmv_sync.server.manager.RoomManager`: shared loads, idle unload,
failure isolation, health and shutdown, over a real MemoryStore.

Time: ``health()`` reads ``time.monotonic`` through the manager module's ``time``
reference; the recovery test swaps that reference for a fake clock (the event loop's
own clock is left alone).
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pytest

from vmv_sync.config import Settings
from vmv_sync.errors import ServerError, StorageError, Unauthenticated
from vmv_sync.protocol import Saved
from vmv_sync.server import manager as manager_module
from vmv_sync.server.auth import Principal
from vmv_sync.server.manager import RoomManager
from vmv_sync.storage import StoredDoc

from .test_room import (
    STEP_TIMEOUT,
    FailingStore,
    FaultyMemoryStore,
    Peer,
    append_mission,
    mission_of,
    settle,
    stored_doc,
)

pytestmark = pytest.mark.anyio

SETTINGS = Settings(auth=False)


class CountingStore(FailingStore):
    """A real MemoryStore that counts loads, can hold them at a gate, and fails some commits."""

    def __init__(self, *failing: str) -> None:
        super().__init__(*failing)
        self.loads: dict[str, int] = {}
        self.load_gate: anyio.Event | None = None
        self.appended: list[str] = []

    async def load(self, workshop_id: str) -> StoredDoc:
        self.loads[workshop_id] = self.loads.get(workshop_id, 0) + 1
        if self.load_gate is not None:
            await self.load_gate.wait()
        return await super().load(workshop_id)

    async def append(
        self, workshop_id: str, updates: Sequence[bytes], *, claims: Mapping[int, str] | None = None
    ) -> int:
        self.appended.append(workshop_id)
        return await super().append(workshop_id, updates, claims=claims)


async def test_concurrent_acquires_of_one_workshop_share_one_load() -> None:
    store = CountingStore()
    store.load_gate = anyio.Event()
    got: list[Any] = []
    async with RoomManager(store, SETTINGS) as manager:

        async def acquire() -> None:
            got.append(await manager.acquire("w"))

        with anyio.fail_after(STEP_TIMEOUT):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(acquire)
                await anyio.wait_all_tasks_blocked()  # all five wait on the one load
                assert store.loads == {"w": 1}
                store.load_gate.set()
        assert len(got) == 5 and all(room is got[0] for room in got)
        assert got[0].refs == 5
        assert store.loads == {"w": 1}
        for room in got:
            manager.release(room)


async def test_a_released_room_is_unloaded_after_the_idle_time() -> None:
    store = CountingStore()
    async with RoomManager(store, Settings(auth=False, room_idle_seconds=0.0)) as manager:
        room = await manager.acquire("w")
        peer = Peer(room)
        await peer.join()
        await peer.push(peer.edit(append_mission("kept")))
        room.remove(peer.conn)
        manager.release(room)  # unload starts now; it must still commit the queued update
        with anyio.fail_after(STEP_TIMEOUT):
            await room.stopped.wait()
        await anyio.wait_all_tasks_blocked()  # the unload task forgets the room
        assert "w" not in manager.rooms
        assert store.loads["w"] == 1
        assert mission_of(await stored_doc(store, "w")) == "kept"
        again = await manager.acquire("w")  # a fresh load, from the store
        assert again is not room
        assert store.loads["w"] == 3  # the first room, stored_doc, the new room
        assert mission_of(again.doc) == "kept"
        manager.release(again)


async def test_a_room_still_referenced_is_not_unloaded() -> None:
    store = CountingStore()
    async with RoomManager(store, Settings(auth=False, room_idle_seconds=0.0)) as manager:
        first = await manager.acquire("w")
        second = await manager.acquire("w")
        manager.release(first)
        await anyio.wait_all_tasks_blocked()
        assert manager.rooms.get("w") is second and not second.closing
        manager.release(second)
        with anyio.fail_after(STEP_TIMEOUT):
            await second.stopped.wait()


async def test_a_failing_room_is_dropped_and_loads_fresh_while_others_run(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(manager_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    store = CountingStore("bad")
    async with RoomManager(store, SETTINGS) as manager:
        assert manager.health() == (True, "ok")
        good, bad = await manager.acquire("good"), await manager.acquire("bad")
        g1, g2, b1 = Peer(good), Peer(good), Peer(bad)
        for peer in (g1, g2, b1):
            await peer.join()

        await b1.push(b1.edit(append_mission("lost")))
        with anyio.fail_after(STEP_TIMEOUT):
            await bad.stopped.wait()
        await anyio.wait_all_tasks_blocked()
        assert b1.code == 1011
        assert isinstance(bad.failure, StorageError)
        assert "bad" not in manager.rooms
        healthy, why = manager.health()
        assert not healthy and "bad" in why and "storage" in why

        # the other room never noticed
        await g1.push(g1.edit(append_mission("still here")))
        await settle(good)
        g2.catch_up()
        assert mission_of(g2.doc) == "still here"
        assert g1.code is None and g2.code is None and not good.closing

        # the failed room loads again, fresh, from the store (which never had "lost")
        store.failing.clear()
        manager.release(bad)  # the failed room's reference, as the endpoint would release it
        again = await manager.acquire("bad")
        assert again is not bad and again.failure is None
        assert store.loads["bad"] == 2
        assert mission_of(again.doc) == ""
        b2 = Peer(again, wants_saved=True)
        await b2.join()
        await b2.push(b2.edit(append_mission("saved now")))
        await settle(again)
        assert b2.received(Saved) == [Saved(1)]
        assert mission_of(await stored_doc(store, "bad")) == "saved now"

        now[0] += 31  # the failure is old news
        assert manager.health() == (True, "ok")
        for room in (good, again):
            manager.release(room)


async def test_a_room_that_cannot_load_is_refused_and_retried() -> None:
    class BrokenLoad(FaultyMemoryStore):
        fail = True

        async def load(self, workshop_id: str) -> StoredDoc:
            if self.fail:
                raise StorageError("cannot read")
            return await super().load(workshop_id)

    store = BrokenLoad()
    async with RoomManager(store, SETTINGS) as manager:
        with pytest.raises(ServerError, match="could not load"):
            await manager.acquire("w")
        assert "w" not in manager.rooms
        assert manager.health()[0] is False
        store.fail = False
        room = await manager.acquire("w")
        assert room.load_error is None
        manager.release(room)


async def test_aclose_closes_connections_with_1001_and_flushes() -> None:
    store = CountingStore()
    async with RoomManager(store, SETTINGS) as manager:
        rooms = [await manager.acquire("a"), await manager.acquire("b")]
        peers = [Peer(room) for room in rooms]
        for peer in peers:
            await peer.join()
        for peer, text in zip(peers, ("for a", "for b"), strict=True):
            await peer.push(peer.edit(append_mission(text)))  # queued, not yet committed
        with anyio.fail_after(STEP_TIMEOUT):
            await manager.aclose()
        assert [peer.code for peer in peers] == [1001, 1001]
        assert all(room.stopped.is_set() for room in rooms)
        assert manager.rooms == {}
        assert not manager.running
        assert manager.health() == (False, "the room manager is not running")
        with pytest.raises(ServerError):
            await manager.acquire("a")
    assert mission_of(await stored_doc(store, "a")) == "for a"
    assert mission_of(await stored_doc(store, "b")) == "for b"


async def test_close_participant_closes_only_that_participants_connections() -> None:
    store = CountingStore()
    async with RoomManager(store, SETTINGS) as manager:
        room = await manager.acquire("w")
        ann1, ann2, bob = (Peer(room, Principal(pid)) for pid in ("ann", "ann", "bob"))
        for peer in (ann1, ann2, bob):
            await peer.join()
        assert manager.close_participant("w", "ann", Unauthenticated("removed")) == 2
        assert (ann1.code, ann2.code, bob.code) == (4401, 4401, None)
        assert manager.close_participant("elsewhere", "ann", Unauthenticated("removed")) == 0
        manager.release(room)


async def test_acquiring_again_before_the_idle_unload_keeps_the_room() -> None:
    store = CountingStore()
    async with RoomManager(store, Settings(auth=False, room_idle_seconds=0.0)) as manager:
        room = await manager.acquire("w")
        manager.release(room)  # the unload timer starts ...
        again = await manager.acquire("w")  # ... and finds the room in use when it fires
        await anyio.wait_all_tasks_blocked()
        assert again is room and not room.closing and manager.rooms["w"] is room
        assert store.loads == {"w": 1}
        manager.release(again)
        with anyio.fail_after(STEP_TIMEOUT):
            await room.stopped.wait()
