"""In-process tests of :class:`vmv_sync.server.rooms.Room`: its update pipeline, end to end.

A room runs in a task group as the manager would run it, over a real store
(:class:`MemoryStore`, or :class:`SQLiteStore` on a file in ``tmp_path``), with real
pycrdt replicas behind :class:`Connection` objects whose channel records every frame.
No socket, no subprocess, no sleeps: a server edit that changes nothing
(:func:`settle`) is the barrier, since the room answers it only after everything
queued before it is applied, committed and relayed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self

import anyio
import pytest
from pycrdt import Doc, Map, Text

from vmv_sync.config import Settings
from vmv_sync.errors import CLIENT_ID_TAKEN_PREFIX, CloseError, ServerError, StorageError
from vmv_sync.protocol import (
    Awareness,
    Message,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_awareness_update,
    encode_awareness,
    encode_awareness_update,
    encode_query_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    parse_message,
)
from vmv_sync.protocol.update import summarize_update
from vmv_sync.protocol.varint import decode_state_vector
from vmv_sync.schema import bind_roots, ensure_participant_entries, new_workshop, participant_entries_missing
from vmv_sync.server.auth import Principal
from vmv_sync.server.clientids import SERVER_OWNER
from vmv_sync.server.connection import Connection
from vmv_sync.server.rooms import Room
from vmv_sync.storage import MemoryStore, SQLiteStore, Store, StoredDoc

pytestmark = pytest.mark.anyio

WID = "w1"
#: generous bound on any single test step; nothing here should take more than milliseconds
STEP_TIMEOUT = 5.0


# -- helpers shared by the in-process server tests (tests/server/test_manager.py) ------------


class RecordingChannel:
    """A socket that is always writable and keeps every frame written to it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send_nowait(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return True

    async def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def messages(self) -> list[Message]:
        return [parse_message(frame) for frame in self.frames]


class FaultyMemoryStore(MemoryStore):
    """Base of the MemoryStores with a fault below (``__aenter__`` typed ``Self``, as the Store protocol asks)."""

    async def __aenter__(self) -> Self:
        return self


class FailingStore(FaultyMemoryStore):
    """A real MemoryStore whose commits fail for some workshops (a full disk, for them)."""

    def __init__(self, *failing: str) -> None:
        super().__init__()
        self.failing = set(failing)

    async def append(
        self, workshop_id: str, updates: Sequence[bytes], *, claims: Mapping[int, str] | None = None
    ) -> int:
        if workshop_id in self.failing:
            await anyio.lowlevel.checkpoint()
            raise StorageError(f"simulated disk full for {workshop_id}")
        return await super().append(workshop_id, updates, claims=claims)


class GatedStore(FaultyMemoryStore):
    """A real MemoryStore whose commits wait until :attr:`gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()

    async def append(
        self, workshop_id: str, updates: Sequence[bytes], *, claims: Mapping[int, str] | None = None
    ) -> int:
        await self.gate.wait()
        return await super().append(workshop_id, updates, claims=claims)


async def settle(room: Room) -> None:
    """Return once everything queued in ``room`` before this call is committed and relayed."""
    with anyio.fail_after(STEP_TIMEOUT):
        await room.edit(lambda doc: None, reason="test barrier")


@asynccontextmanager
async def running(room: Room) -> AsyncIterator[Room]:
    """Run ``room`` (loaded) in a task group; stop it, draining its queue, on exit."""
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(STEP_TIMEOUT):
            await tg.start(room.run)
        try:
            yield room
        finally:
            with anyio.fail_after(STEP_TIMEOUT):
                await room.stop()


class Peer:
    """A client replica on one connection to a room, speaking frames as the endpoint delivers them."""

    def __init__(
        self,
        room: Room,
        principal: Principal | None = None,
        *,
        wants_saved: bool = False,
        client_id: int | None = None,
    ) -> None:
        self.room = room
        self.doc: Doc[Any] = Doc() if client_id is None else Doc(client_id=client_id)
        self.channel = RecordingChannel()
        self.conn = Connection(room.workshop_id, self.channel, principal=principal, wants_saved=wants_saved)

    @property
    def code(self) -> int | None:
        return self.conn.close_error.code if self.conn.close_error is not None else None

    @property
    def reason(self) -> str:
        return self.conn.close_error.reason if self.conn.close_error is not None else ""

    def received(self, kind: type[Any]) -> list[Any]:
        return [m for m in self.channel.messages() if isinstance(m, kind)]

    def catch_up(self) -> None:
        """Apply every update the server sent (step 2s and relays) to this replica."""
        for message in self.channel.messages():
            if isinstance(message, (SyncStep2, SyncUpdate)):
                self.doc.apply_update(message.update)

    async def send(self, frame: bytes) -> None:
        """Hand ``frame`` to the room like the endpoint's read loop (a CloseError closes us)."""
        try:
            await self.room.receive(self.conn, frame)
        except CloseError as exc:
            self.conn.fail(exc)

    async def join(self) -> None:
        """Join the room and sync (step 1 -> the room's step 2), then apply what came."""
        self.room.add(self.conn)
        await self.send(encode_sync_step1(self.doc.get_state()))
        await settle(self.room)
        self.catch_up()
        assert self.conn.synced

    def edit(self, fn: Callable[[Doc[Any]], object]) -> bytes:
        """Make a local edit; return its update (the one a provider would send)."""
        captured: list[bytes] = []
        subscription = self.doc.observe(lambda event: captured.append(event.update))
        try:
            with self.doc.transaction():
                fn(self.doc)
        finally:
            self.doc.unobserve(subscription)
        assert len(captured) == 1
        return captured[0]

    async def push(self, update: bytes) -> None:
        await self.send(encode_sync_update(update))

    async def write(self, fn: Callable[[Doc[Any]], object]) -> bytes:
        update = self.edit(fn)
        await self.push(update)
        return update


def append_mission(text: str) -> Callable[[Doc[Any]], object]:
    def edit(doc: Doc[Any]) -> None:
        mission = doc.get("mission", type=Text)
        mission += text

    return edit


def mission_of(doc: Doc[Any]) -> str:
    return str(doc.get("mission", type=Text))


async def stored_doc(store: Store, workshop_id: str = WID) -> Doc[Any]:
    """The workshop as the store has it: a fresh replica of its snapshot and updates."""
    stored = await store.load(workshop_id)
    doc: Doc[Any] = Doc()
    for update in [*([stored.snapshot] if stored.snapshot else []), *stored.updates]:
        doc.apply_update(update)
    return doc


async def seed_workshop(store: Store, workshop_id: str = WID, participants: Sequence[str] = ("p1", "p2")) -> None:
    """A workshop created by facilitator f1, with participants and their containers, stored."""
    doc: Doc[Any] = Doc()
    roots = new_workshop(doc, title="Team", facilitator_id="f1", facilitator_name="Fay", values=["a", "b"], now=1.0)
    with doc.transaction():
        for pid in participants:
            roots.participants[pid] = Map({"name": pid.upper(), "role": "participant", "joined_at": 1.0})
            ensure_participant_entries(roots, pid)
    await store.append(workshop_id, [doc.get_update()])


def principal(pid: str, role: str = "participant") -> Principal:
    return Principal(pid, pid.upper(), role, WID)


AUTH = Settings(auth=True)
NO_AUTH = Settings(auth=False)


# -- loading and the update path ------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "vmv.sqlite3")
    async with backend:
        yield backend


async def test_a_room_loads_the_stored_document(store: Store) -> None:
    await store.append(WID, [_update_with_mission("stored text")])
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        assert mission_of(room.doc) == "stored text"
        assert room.last_seq == 1
        assert room.load_error is None and room.ready.is_set()
        peer = Peer(room)
        await peer.join()
        assert mission_of(peer.doc) == "stored text"


def _update_with_mission(text: str) -> bytes:
    doc: Doc[Any] = Doc()
    append_mission(text)(doc)
    return doc.get_update()


async def test_an_update_is_committed_relayed_to_synced_peers_and_acknowledged(store: Store) -> None:
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        sender, synced = Peer(room, wants_saved=True), Peer(room)
        await sender.join()
        await synced.join()
        unsynced = Peer(room)
        room.add(unsynced.conn)  # never sent its step 1: must not get relays yet
        before = len(sender.channel.frames)

        update = await sender.write(append_mission("hello"))
        await settle(room)

        assert mission_of(room.doc) == "hello"
        assert mission_of(await stored_doc(store)) == "hello"
        relayed = [m.update for m in synced.received(SyncUpdate)]
        assert update in relayed or any(_contains(u, "hello") for u in relayed)
        synced.catch_up()
        assert mission_of(synced.doc) == "hello"
        # the sender gets no echo of its own update, only the acknowledgement
        new_for_sender = [parse_message(f) for f in sender.channel.frames[before:]]
        assert not any(isinstance(m, SyncUpdate) for m in new_for_sender)
        assert sender.received(Saved) == [Saved(1)]
        assert synced.received(Saved) == []  # did not ask for them
        assert [type(m) for m in unsynced.channel.messages()] == [SyncStep1]


def _contains(update: bytes, text: str) -> bool:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return text in mission_of(doc)


async def test_saved_counts_every_update_of_the_sender() -> None:
    room = Room(WID, MemoryStore(), NO_AUTH)
    async with running(room):
        sender = Peer(room, wants_saved=True)
        await sender.join()
        for part in ("a", "b", "c"):
            await sender.write(append_mission(part))
        await settle(room)
        saved = sender.received(Saved)
        assert saved and saved[-1] == Saved(3)
        assert [s.count for s in saved] == sorted(s.count for s in saved)


async def test_sync_step2_is_answered_only_after_the_commit() -> None:
    store = GatedStore()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        writer, joiner = Peer(room), Peer(room)
        room.add(writer.conn)
        room.add(joiner.conn)
        await writer.push(writer.edit(append_mission("durable")))
        await joiner.send(encode_sync_step1(joiner.doc.get_state()))
        await anyio.wait_all_tasks_blocked()  # the pipeline waits on the commit
        assert joiner.received(SyncStep2) == []
        assert (await store.load(WID)).updates == ()
        store.gate.set()
        await settle(room)
        (step2,) = joiner.received(SyncStep2)
        joiner.doc.apply_update(step2.update)
        assert mission_of(joiner.doc) == "durable"
        assert mission_of(await stored_doc(store)) == "durable"


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x00\x01\x05",  # sync step 1 with an undecodable state vector
        b"\x07\x01",  # unknown message type
        encode_sync_update(b"\xff\xff\xff\x01\x02"),  # an update that is not Yjs v1
        b"\x64\x01",  # "saved" travels only from server to client
    ],
    ids=["bad-state-vector", "unknown-type", "bad-update", "saved-from-client"],
)
async def test_a_malformed_frame_closes_only_its_sender_and_stores_nothing(frame: bytes) -> None:
    store = MemoryStore()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        bad, good = Peer(room), Peer(room)
        await bad.join()
        await good.join()
        await bad.send(frame)
        await settle(room)
        assert bad.code == 4400
        assert good.code is None
        assert (await store.load(WID)).updates == ()
        await good.write(append_mission("still works"))
        await settle(room)
        assert mission_of(await stored_doc(store)) == "still works"


async def test_an_update_with_a_gap_is_refused() -> None:
    store = MemoryStore()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        peer, other = Peer(room), Peer(room)
        await peer.join()
        await other.join()
        peer.edit(append_mission("first "))  # never sent
        second = peer.edit(append_mission("second"))
        await peer.push(second)
        await settle(room)
        assert peer.code == 4400
        assert "skips" in peer.reason
        assert (await store.load(WID)).updates == ()
        assert mission_of(room.doc) == ""
        assert other.received(SyncUpdate) == []


async def test_an_update_with_a_missing_dependency_is_refused() -> None:
    store = MemoryStore()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        elsewhere: Doc[Any] = Doc()  # a replica the server never heard from
        append_mission("unknown ")(elsewhere)
        peer = Peer(room)
        await peer.join()
        peer.doc.apply_update(elsewhere.get_update())
        update = peer.edit(append_mission("after it"))  # its origin is the unknown item
        await peer.push(update)
        await settle(room)
        assert peer.code == 4400
        assert "depends" in peer.reason
        assert (await store.load(WID)).updates == ()
        assert mission_of(room.doc) == ""


async def test_an_empty_update_is_ignored() -> None:
    store = MemoryStore()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        peer = Peer(room, wants_saved=True)
        await peer.join()
        await peer.push(b"\x00\x00")
        await settle(room)
        assert peer.code is None
        assert peer.received(Saved) == []
        assert store.commits == 0


# -- authentication on: write rules and client-id ownership ---------------------------------------


async def test_a_write_to_another_participants_entry_is_refused_with_4403() -> None:
    store = MemoryStore()
    await seed_workshop(store)
    room = Room(WID, store, AUTH)
    async with running(room):
        assert room.guard is not None
        p1, p2 = Peer(room, principal("p1")), Peer(room, principal("p2"))
        await p1.join()
        await p2.join()

        def rename_p2(doc: Doc[Any]) -> None:
            doc.get("participants", type=Map)["p2"]["name"] = "hacked"

        await p1.write(rename_p2)
        await settle(room)
        assert p1.code == 4403
        assert p2.code is None
        assert bind_roots(room.doc).participants["p2"]["name"] == "P2"
        assert (await store.load(WID)).update_count == 1  # only the seed
        assert p2.received(SyncUpdate) == []

        # the same participant's own entry is fine
        def rename_self(doc: Doc[Any]) -> None:
            doc.get("participants", type=Map)["p2"]["name"] = "Bo"

        await p2.write(rename_self)
        await settle(room)
        assert p2.code is None
        assert bind_roots(await stored_doc(store)).participants["p2"]["name"] == "Bo"


async def test_client_ids_belong_to_their_first_writer() -> None:
    store = MemoryStore()
    await seed_workshop(store)
    room = Room(WID, store, AUTH)
    async with running(room):
        p1 = Peer(room, principal("p1"))
        await p1.join()
        await p1.write(append_mission("mine "))
        await settle(room)
        assert p1.code is None
        client_id = p1.doc.client_id
        # the claim is committed together with the update
        stored = await store.load(WID)
        assert stored.client_ids[client_id] == "p1"
        assert mission_of(await stored_doc(store)) == "mine "

        squatter = Peer(room, principal("p2"), client_id=client_id)
        await squatter.join()
        assert mission_of(squatter.doc) == "mine "
        await squatter.write(append_mission("not yours"))
        await settle(room)
        assert squatter.code == 4403
        assert squatter.reason.startswith(CLIENT_ID_TAKEN_PREFIX)
        assert mission_of(room.doc) == "mine "
        assert (await store.load(WID)).update_count == stored.update_count

        # the owner goes on writing under its id
        await p1.write(append_mission("again"))
        await settle(room)
        assert p1.code is None
        assert mission_of(await stored_doc(store)) == "mine again"


async def test_the_servers_own_edits_go_under_a_client_id_claimed_by_the_server() -> None:
    store = MemoryStore()
    await seed_workshop(store)
    room = Room(WID, store, AUTH)
    async with running(room):
        peer = Peer(room, principal("p1"))
        await peer.join()
        await room.edit(append_mission("from the server"), reason="test")
        server_id = room.doc.client_id
        stored = await store.load(WID)
        assert stored.client_ids[server_id] == SERVER_OWNER
        on_disk = await stored_doc(store)
        assert mission_of(on_disk) == "from the server"
        assert server_id in decode_state_vector(on_disk.get_state())
        peer.catch_up()
        assert mission_of(peer.doc) == "from the server"
        # nobody may write under it, however plausible the clocks
        squatter = Peer(room, principal("p2"), client_id=server_id)
        await squatter.join()
        await squatter.write(append_mission("!"))
        await settle(room)
        assert squatter.code == 4403 and squatter.reason.startswith(CLIENT_ID_TAKEN_PREFIX)


async def test_a_failing_server_edit_reraises_and_the_room_goes_on() -> None:
    room = Room(WID, MemoryStore(), NO_AUTH)
    async with running(room):

        def broken(doc: Doc[Any]) -> None:
            raise ValueError("bad edit")

        with pytest.raises(ValueError, match="bad edit"):
            await room.edit(broken)
        await room.edit(append_mission("ok"))
        assert mission_of(room.doc) == "ok"
        assert room.failure is None


async def test_the_quota_refuses_a_participants_update_with_4413() -> None:
    store = MemoryStore()
    await seed_workshop(store)
    seeded = (await store.load(WID)).update_bytes
    room = Room(WID, store, Settings(auth=True, workshop_quota_bytes=seeded + 300))
    async with running(room):
        p1, p2 = Peer(room, principal("p1")), Peer(room, principal("p2"))
        await p1.join()
        await p2.join()
        await p1.write(append_mission("small "))
        await settle(room)
        assert p1.code is None
        count = (await store.load(WID)).update_count
        await p2.write(append_mission("x" * 1000))
        await settle(room)
        assert p2.code == 4413
        assert "nearly full" in p2.reason  # participants stop short of it (the facilitator's reserve)
        assert (await store.load(WID)).update_count == count
        assert "x" not in mission_of(room.doc)
        assert p1.code is None


# -- authentication off: the containers only the server creates -----------------------------------


async def test_a_participant_entry_without_containers_gets_them_from_the_server() -> None:
    store = MemoryStore()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        writer, watcher = Peer(room), Peer(room)
        await writer.join()
        await watcher.join()

        def join_as_p9(doc: Doc[Any]) -> None:
            doc.get("participants", type=Map)["p9"] = Map({"name": "Nine", "role": "participant"})

        await writer.write(join_as_p9)
        await settle(room)
        assert writer.code is None
        assert not participant_entries_missing(bind_roots(room.doc), "p9")
        assert not participant_entries_missing(bind_roots(await stored_doc(store)), "p9")
        for peer in (writer, watcher):  # the containers are relayed to the sender too
            peer.catch_up()
            assert not participant_entries_missing(bind_roots(peer.doc), "p9")
        # the containers came from the server's own client id
        stored = await store.load(WID)
        assert stored.client_ids.get(room.doc.client_id) == SERVER_OWNER


# -- failure stays in the room ---------------------------------------------------------------------


async def test_a_failed_commit_ends_the_room_with_1011() -> None:
    store = FailingStore(WID)
    room = Room(WID, store, NO_AUTH)
    async with anyio.create_task_group() as tg:
        await tg.start(room.run)
        writer, watcher = Peer(room, wants_saved=True), Peer(room)
        room.add(writer.conn)
        room.add(watcher.conn)
        watcher.conn.synced = True  # as if its step 2 had gone out (its step 1 would never be answered)
        await writer.push(writer.edit(append_mission("lost")))
        with anyio.fail_after(STEP_TIMEOUT):
            await room.stopped.wait()
    assert isinstance(room.failure, StorageError)
    assert room.closing
    assert writer.code == 1011 and watcher.code == 1011
    assert watcher.received(SyncUpdate) == []  # nothing uncommitted was relayed
    assert writer.received(Saved) == []  # nor acknowledged
    with pytest.raises(ServerError):
        await room.edit(append_mission("after"))
    with pytest.raises(ServerError):
        await room.receive(Peer(room).conn, encode_sync_update(_update_with_mission("late")))


async def test_a_server_edit_waiting_on_a_failed_commit_gets_the_error() -> None:
    room = Room(WID, FailingStore(WID), NO_AUTH)
    async with anyio.create_task_group() as tg:
        await tg.start(room.run)
        with anyio.fail_after(STEP_TIMEOUT), pytest.raises(StorageError):
            await room.edit(append_mission("never stored"))
        await room.stopped.wait()
    assert isinstance(room.failure, StorageError)


async def test_stop_drains_the_queue_before_it_returns() -> None:
    store = MemoryStore()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        peer = Peer(room)
        await peer.join()
        for part in ("a", "b", "c"):
            await peer.push(peer.edit(append_mission(part)))
        # no settle: stop() itself must commit what is queued
    assert room.stopped.is_set()
    assert mission_of(await stored_doc(store)) == "abc"


async def test_the_quota_counts_every_update_of_one_batch() -> None:
    """Two updates that each fit the quota but not together: the second must be refused."""
    store = GatedStore()
    store.gate.set()
    await seed_workshop(store)
    seeded = (await store.load(WID)).update_bytes
    room = Room(WID, store, Settings(auth=True, workshop_quota_bytes=seeded + 1500))
    async with running(room):
        p1, p2, f1 = (
            Peer(room, principal("p1")),
            Peer(room, principal("p2")),
            Peer(room, principal("f1", "facilitator")),
        )
        for peer in (p1, p2, f1):
            await peer.join()
        store.gate = anyio.Event()
        await f1.write(append_mission("."))  # its commit waits at the gate ...
        await anyio.wait_all_tasks_blocked()
        await p1.write(append_mission("a" * 1000))  # ... while these two queue up: one batch
        await p2.write(_set_vision("b" * 1000))
        store.gate.set()
        await settle(room)
        stored = (await store.load(WID)).update_bytes
    assert stored <= seeded + 1500, f"stored {stored} bytes, quota {seeded + 1500}"
    assert {p1.code, p2.code} == {4413, None}


def _set_vision(text: str) -> Callable[[Doc[Any]], object]:
    def edit(doc: Doc[Any]) -> None:
        vision = doc.get("vision", type=Text)
        vision += text

    return edit


# -- more of the pipeline: a client's step 2, refused senders, ballots, compaction -------------------


async def test_a_clients_sync_step2_is_applied_like_an_update() -> None:
    store = MemoryStore()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        watcher = Peer(room)
        await watcher.join()
        offline = Peer(room)
        offline.edit(append_mission("written offline"))
        room.add(offline.conn)
        (server_step1,) = offline.received(SyncStep1)
        await offline.send(encode_sync_step2(offline.doc.get_update(server_step1.state_vector)))
        await settle(room)
        assert offline.code is None
        assert mission_of(await stored_doc(store)) == "written offline"
        watcher.catch_up()
        assert mission_of(watcher.doc) == "written offline"


async def test_what_a_refused_connection_still_had_queued_is_dropped() -> None:
    store = MemoryStore()
    await seed_workshop(store)
    room = Room(WID, store, AUTH)
    async with running(room):
        p1 = Peer(room, principal("p1"))
        await p1.join()

        def rename_p2(doc: Doc[Any]) -> None:
            doc.get("participants", type=Map)["p2"]["name"] = "hacked"

        await p1.write(rename_p2)
        await settle(room)
        assert p1.code == 4403
        fresh = Peer(room, principal("p1"))  # what it sends next is well-formed and allowed ...
        await fresh.join()
        await p1.push(fresh.edit(append_mission("from a refused socket")))
        await settle(room)
        assert mission_of(room.doc) == ""  # ... but it came over the refused connection
        assert (await store.load(WID)).update_count == 1


async def test_a_ballot_without_votes_gets_its_votes_map_from_the_server() -> None:
    store = MemoryStore()
    await seed_workshop(store)
    room = Room(WID, store, AUTH)
    async with running(room):
        facilitator = Peer(room, principal("f1", "facilitator"))
        await facilitator.join()

        def ask(doc: Doc[Any]) -> None:
            doc.get("ballots", type=Map)["b9"] = Map({"question": "which?"})

        await facilitator.write(ask)
        await settle(room)
        assert facilitator.code is None
        assert isinstance(bind_roots(room.doc).votes.get("b9"), Map)
        assert isinstance(bind_roots(await stored_doc(store)).votes.get("b9"), Map)
        facilitator.catch_up()
        assert isinstance(bind_roots(facilitator.doc).votes.get("b9"), Map)


async def test_compaction_folds_the_tail_into_a_snapshot_that_loads_the_same() -> None:
    store = MemoryStore()
    room = Room(WID, store, Settings(auth=False, compact_updates=3))
    async with running(room):
        peer = Peer(room)
        await peer.join()
        for part in ("one ", "two ", "three ", "four"):
            await peer.write(append_mission(part))
            await settle(room)
        await anyio.wait_all_tasks_blocked()  # the background compaction finishes
        stored = await store.load(WID)
        assert stored.snapshot is not None
        assert stored.update_count < 4
    again = Room(WID, store, NO_AUTH)
    async with running(again):
        assert mission_of(again.doc) == "one two three four"
    assert mission_of(await stored_doc(store)) == "one two three four"


# -- awareness through the room --------------------------------------------------------------------


def _awareness_frame(*items: tuple[int, int, str]) -> bytes:
    return encode_awareness(encode_awareness_update(list(items)))


def _awareness_states(peer: Peer) -> list[tuple[int, int, Any]]:
    return [
        (e.client_id, e.clock, e.state)
        for message in peer.received(Awareness)
        for e in decode_awareness_update(message.update)
    ]


async def test_awareness_is_relayed_to_every_peer_and_cleared_when_its_connection_leaves() -> None:
    room = Room(WID, MemoryStore(), Settings(auth=False, awareness_tick=0.0))
    async with running(room):
        a, b = Peer(room), Peer(room)
        await a.join()
        await b.join()
        await a.send(_awareness_frame((11, 1, '{"cursor": 1}')))
        await anyio.wait_all_tasks_blocked()  # the awareness loop flushes within its tick
        for peer in (a, b):  # the sender too: a lone provider must see signs of life
            assert _awareness_states(peer) == [(11, 1, {"cursor": 1})]

        late = Peer(room)
        room.add(late.conn)  # a new peer gets the table at once
        assert _awareness_states(late) == [(11, 1, {"cursor": 1})]
        await late.send(encode_query_awareness())
        assert _awareness_states(late) == [(11, 1, {"cursor": 1})] * 2

        room.remove(a.conn)  # the server clears a's state, without waiting for a tick
        assert _awareness_states(b)[-1] == (11, 1, None)
        assert b.code is None


async def test_an_awareness_spoof_closes_its_sender_with_4403() -> None:
    store = MemoryStore()
    await seed_workshop(store)
    room = Room(WID, store, Settings(auth=True, awareness_tick=0.0))
    async with running(room):
        p1, p2 = Peer(room, principal("p1")), Peer(room, principal("p2"))
        await p1.join()
        await p2.join()
        await p1.send(_awareness_frame((5, 1, '{"user": {"id": "p1", "name": "P1"}}')))
        await p2.send(_awareness_frame((5, 2, '{"user": {"id": "p2"}}')))
        assert p2.code == 4403
        await p1.send(_awareness_frame((6, 1, '{"user": {"id": "p2"}}')))
        assert p1.code == 4403


async def test_a_silent_connection_is_closed_with_4408(monkeypatch: pytest.MonkeyPatch) -> None:
    import time as real_time

    from vmv_sync.server import presence_upkeep
    from vmv_sync.server import rooms as rooms_module

    now = [real_time.monotonic()]  # Connection stamps itself with the real clock at creation
    clock = SimpleNamespace(monotonic=lambda: now[0], perf_counter=real_time.perf_counter)
    monkeypatch.setattr(rooms_module, "time", clock)  # the room stamps what it receives
    monkeypatch.setattr(presence_upkeep, "time", clock)  # the awareness loop drops the silent
    room = Room(WID, MemoryStore(), Settings(auth=False, awareness_timeout=1.0, awareness_tick=0.0))
    async with running(room):
        silent, active = Peer(room), Peer(room)
        await silent.join()
        await active.join()
        now[0] += 1.5
        await active.send(_awareness_frame((1, 1, "{}")))  # a sign of life, and a wake-up for the loop
        await anyio.wait_all_tasks_blocked()
        assert silent.code == 4408
        assert active.code is None


class _UnreadableStore(FaultyMemoryStore):
    async def load(self, workshop_id: str) -> StoredDoc:
        await anyio.lowlevel.checkpoint()
        raise StorageError("cannot read")


async def test_a_room_that_fails_to_load_closes_its_inbox() -> None:
    room = Room(WID, _UnreadableStore(), NO_AUTH)
    async with anyio.create_task_group() as tg:
        await tg.start(room.run)
    assert isinstance(room.load_error, StorageError) and room.stopped.is_set()
    # the room's private inbox: an open send side is what warns when the room is collected
    assert room._inbox.statistics().open_send_streams == 0


async def test_a_stopped_room_closes_its_inbox() -> None:
    room = Room(WID, MemoryStore(), NO_AUTH)
    async with running(room):
        assert room._inbox.statistics().open_send_streams == 1
    assert room._inbox.statistics().open_send_streams == 0


async def test_one_batch_is_relayed_merged_to_bystanders_and_without_echoes_to_its_senders() -> None:
    store = GatedStore()
    store.gate.set()
    room = Room(WID, store, NO_AUTH)
    async with running(room):
        a, b, c = Peer(room, wants_saved=True), Peer(room, wants_saved=True), Peer(room)
        for peer in (a, b, c):
            await peer.join()
        store.gate = anyio.Event()
        await c.write(append_mission("c "))  # batch 1: its commit waits at the gate ...
        await anyio.wait_all_tasks_blocked()
        await a.write(append_mission("a "))  # ... while a and b queue up: batch 2
        await b.write(_set_vision("b"))
        store.gate.set()
        await settle(room)
    for peer in (a, b, c):
        for update in peer.received(SyncUpdate):
            assert peer.doc.client_id not in summarize_update(update.update).structs, "an echo"
    assert len(c.received(SyncUpdate)) == 1  # a's and b's updates, merged into one frame
    assert len(a.received(SyncUpdate)) == 2 and len(b.received(SyncUpdate)) == 2  # c's, then the other's
    assert a.received(Saved) == [Saved(1)] and b.received(Saved) == [Saved(1)] and c.received(Saved) == []
    assert sorted(mission_of(room.doc).split()) == ["a", "c"]  # concurrent inserts: either order
    for peer in (a, b, c):
        peer.catch_up()
        assert (mission_of(peer.doc), str(peer.doc.get("vision", type=Text))) == (mission_of(room.doc), "b")


async def test_a_failed_compaction_is_logged_and_the_room_goes_on() -> None:
    class NoCompaction(FaultyMemoryStore):
        attempts = 0

        async def compact(self, workshop_id: str, snapshot: bytes, upto_seq: int, **kwargs: Any) -> None:
            self.attempts += 1
            raise StorageError("cannot compact now")

    store = NoCompaction()
    room = Room(WID, store, Settings(auth=False, compact_updates=2))
    async with running(room):
        peer = Peer(room, wants_saved=True)
        await peer.join()
        for part in ("a", "b", "c", "d"):
            await peer.write(append_mission(part))
            await settle(room)
            await anyio.wait_all_tasks_blocked()
        assert room.failure is None and peer.code is None
        assert store.attempts >= 2  # tried again after the first failure
        assert peer.received(Saved)[-1] == Saved(4)
    stored = await store.load(WID)
    assert stored.snapshot is None and stored.update_count == 4
    assert mission_of(await stored_doc(store)) == "abcd"
