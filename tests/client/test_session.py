"""The client's session over in-memory channels: no server, no socket, no SQLite file.

A bare :class:`~vmv_sync.client.session.Session` against the memory peer of
tests/client/memory.py (handshake, acknowledgements, how a channel ended), then a
whole :class:`~vmv_sync.client.WorkshopClient` given that peer's channel factory
(offline edits flushed on connect, saved only once acknowledged, reconnect after a
loss, a permanent refusal).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pycrdt import Array, Doc, Map

from tests.client.memory import MemoryServer
from vmv_sync.client import Backoff, WorkshopClient, memory_channel_pair
from vmv_sync.client.presence import LocalAwareness
from vmv_sync.client.replica import LocalReplica
from vmv_sync.client.session import Failure, Session
from vmv_sync.presence import PresenceState, PresenceUser
from vmv_sync.protocol import AwarenessEntry
from vmv_sync.storage import MemoryStore

pytestmark = pytest.mark.anyio

FAST = Backoff(base=0.02, factor=2.0, cap=0.1)


class Host:
    """A session host that applies remote updates to ``doc`` and records the rest."""

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.synced = anyio.Event()
        self.saved: list[int] = []
        self.failures: list[Failure] = []
        self.awareness: list[AwarenessEntry] = []

    async def on_remote_update(self, update: bytes) -> None:
        self.doc.apply_update(update)

    async def on_synced(self, session: Session) -> None:
        self.synced.set()

    def on_awareness(self, entries: list[AwarenessEntry]) -> None:
        self.awareness.extend(entries)

    async def on_saved(self, seqs: list[int]) -> None:
        self.saved.extend(seqs)

    def on_failed(self, session: Session, failure: Failure) -> None:
        self.failures.append(failure)


def _me(doc: Doc[Any]) -> LocalAwareness:
    return LocalAwareness(doc.client_id, PresenceState(user=PresenceUser("pa", "Ann", "#000000", "participant")))


def _edit(doc: Doc[Any], key: str, value: str) -> bytes:
    """Write ``meta[key] = value`` and return the update it made."""
    before = doc.get_state()
    doc.get("meta", type=Map)[key] = value
    return doc.get_update(before)


async def test_handshake_syncs_both_ways_and_the_saved_ack_confirms_the_edit() -> None:
    doc: Doc[Any] = Doc()
    host = Host(doc)
    update = _edit(doc, "mine", "local, made offline")
    async with MemoryServer() as server, LocalReplica("w", store=MemoryStore()) as replica:
        _edit(server.doc, "theirs", "on the server")
        seq = await replica.add_local(update)
        client_end, server_end = memory_channel_pair()
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, server_end)
            async with Session(doc, replica, _me(doc), client_end, host) as session:
                with anyio.fail_after(5):
                    await host.synced.wait()
                    while host.saved != [seq]:
                        await anyio.sleep(0.01)
                assert session.synced and session.frames == [[seq]]
                assert server.doc.get("meta", type=Map).to_py() == {"mine": "local, made offline", "theirs": "on the server"}
                assert doc.get("meta", type=Map).to_py() == server.doc.get("meta", type=Map).to_py()
                # The server relays our awareness state back: we announced ourselves.
                assert any(e.client_id == doc.client_id and e.state for e in host.awareness)
                # Live edits after step 2 go one per frame.
                seq2 = await replica.add_local(_edit(doc, "later", "live"))
                session.send_local(seq2, replica.pending()[-1][1])
                with anyio.fail_after(5):
                    while host.saved != [seq, seq2]:
                        await anyio.sleep(0.01)
                assert session.frames == [[seq], [seq2]]
                await session.close_cleanly(_me(doc).removal_frame())
                with anyio.fail_after(5):
                    await session.ended.wait()
            tg.cancel_scope.cancel()
        client_end.drop()
    assert host.failures == []  # a clean close is no failure


async def test_a_lost_channel_and_a_bad_frame_are_reported() -> None:
    doc: Doc[Any] = Doc()
    async with LocalReplica("w", store=MemoryStore()) as replica:
        host = Host(doc)
        client_end, server_end = memory_channel_pair()
        async with Session(doc, replica, _me(doc), client_end, host) as session:
            server_end.drop()
            with anyio.fail_after(5):
                await session.ended.wait()
        assert host.failures == [Failure("the connection was lost (1006)", 1006)]

        host = Host(doc)
        client_end, server_end = memory_channel_pair()
        async with Session(doc, replica, _me(doc), client_end, host) as session:
            await server_end.send(b"\xff\x00")
            with anyio.fail_after(5):
                await session.ended.wait()
        assert host.failures and host.failures[0].message.startswith("the server sent a bad frame")
        client_end.drop()
        server_end.drop()


def _client(server: MemoryServer, **kw: Any) -> WorkshopClient:
    kw.setdefault("backoff", FAST)
    return WorkshopClient(
        "ws://never.invalid", "w", participant_id="pa", name="Ann", store=MemoryStore(),
        channels=server.open_channel, **kw,
    )  # fmt: skip


async def test_offline_edits_are_flushed_on_connect() -> None:
    async with MemoryServer() as server, _client(server, connect=False) as client:
        await client.join()
        await client.post_message("written offline")
        assert client.offline and client.pending_count == 2 and server.opened == 0
        client.reconnect()
        await client.wait_connected(5)
        await client.wait_saved(5)
        assert client.pending_count == 0
        texts = [m["text"] for m in server.doc.get("messages", type=Array).to_py()]
        assert texts == ["written offline"]
        await client.wait_for(lambda: "pa" in client.online_participants, 5)


async def test_saved_only_once_the_server_acknowledges() -> None:
    async with MemoryServer(ack=False) as server, _client(server) as client:
        await client.wait_connected(5)
        await client.post_message("hello")
        await anyio.sleep(0.1)
        assert client.pending_count == 1 and not client.saved  # received, not acknowledged
        assert server.links[-1].counted == 1
        await server.ack()
        await client.wait_saved(5)
        assert client.saved


async def test_reconnects_after_a_loss_and_sends_what_was_made_meanwhile() -> None:
    async with MemoryServer() as server, _client(server) as client:
        await client.wait_connected(5)
        await client.post_message("before")
        await client.wait_saved(5)
        server.drop_all()
        await client.wait_for(lambda: client.last_close_code == 1006, 5)
        await client.post_message("during")
        await client.wait_for(lambda: len(client.connection_attempts) >= 2, 5)
        await client.wait_connected(5)
        await client.wait_saved(5)
        assert client.disconnected_at is not None and server.opened >= 2
        texts = [m.text for m in client.messages]
        assert texts == ["before", "during"]
        assert len(server.doc.get("messages", type=Array)) == 2


async def test_a_refusal_over_a_memory_channel_is_permanent() -> None:
    async with MemoryServer(close_with=4401) as server, _client(server) as client:
        await client.wait_for(lambda: client.gave_up, 5)
        assert client.last_close_code == 4401 and "4401" in (client.last_error or "")
        await anyio.sleep(0.1)
        assert server.opened == 1  # no retry after a permanent refusal
