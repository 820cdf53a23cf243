"""No acknowledged edit is lost to a concurrent creation of a shared container (issue 13).

The server creates every participant's ``selections``/``matrix``/``drafts`` containers;
a replica that has not synced yet holds the actions needing them as durable intents
and applies them once they arrive. Each test runs the real server and real stores.
"""

from __future__ import annotations

import socket
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
from pycrdt import Doc, Map, Text

from tests.client.helpers import FAST, create_workshop, join, server_document
from vmv_sync import schema
from vmv_sync.client import WorkshopClient
from vmv_sync.client.intents import Intent, container_of, missing, validate_on_scratch
from vmv_sync.schema import InvalidAction, bind_roots

pytestmark = pytest.mark.anyio

VALUES = ["Honesty", "Courage", "Kindness", "Focus", "Trust", "Joy", "Care", "Grit"]


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


async def _edit_everything(client: WorkshopClient, tag: str) -> None:
    """8 picks, 3 ratings and a draft, all at once, without waiting for anything."""
    for value in VALUES:
        await client.select_value(value)
    for i, value in enumerate(VALUES[:3]):
        await client.rate_value(value, 1 + i, 5 - i)
    await client.set_draft(f"draft of {tag}")


async def test_never_synced_devices_with_tokens_lose_nothing(server_factory, tmp_path: Path) -> None:
    """Fails on the old client: it created the containers the server made at join (~half lost)."""
    server = server_factory(args=("--secret", "s" * 32))
    created = await create_workshop(server.url, VALUES)
    wid = created["workshop_id"]
    people = [await join(server.url, created, f"P{i}") for i in range(6)]
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                WorkshopClient(server.url, wid, token=p["token"], store_path=tmp_path / f"{i}.sqlite3",
                               backoff=FAST, connect=False)
            )
            for i, p in enumerate(people)
        ]
        for c, p in zip(clients, people, strict=True):  # certainly before their first sync
            await _edit_everything(c, p["participant_id"])
            c.reconnect()
        for c in clients:
            await c.wait_saved(20)
            assert c.refused == []
    data = await server_document(server.url, wid, tmp_path / "reader.sqlite3", token=created["token"])
    for p in people:
        pid = p["participant_id"]
        assert sorted(data.selections[pid]) == sorted(VALUES), pid
        assert sorted(data.matrix[pid]) == sorted(VALUES[:3]), pid
        assert data.drafts[pid] == f"draft of {pid}"


async def test_held_intents_are_durable_and_shown_once_applied(server_factory, tmp_path: Path) -> None:
    """Held while offline on a never-synced device, kept across a restart, applied after the sync."""
    server = server_factory(args=("--secret", "s" * 32))
    created = await create_workshop(server.url, VALUES)
    ann = await join(server.url, created, "Ann")
    store = tmp_path / "ann.sqlite3"
    async with WorkshopClient(dead_url(), created["workshop_id"], token=ann["token"], store_path=store) as offline:
        assert await offline.toggle_value("Honesty") is True
        await offline.rate_value("Honesty", 5, 4)
        await offline.edit_draft(0, insert="We")
        await offline.post_message("hello")  # needs no container: applied at once
        assert offline.pending_count == 4
        assert offline.my_values == () and offline.drafts == {}  # held: not shown yet
        assert [m.text for m in offline.messages] == ["hello"]
    async with WorkshopClient(server.url, created["workshop_id"], token=ann["token"], store_path=store) as again:
        assert again.pending_count == 4  # the held intents survived the restart
        await again.wait_saved(15)
        assert again.my_values == ("Honesty",) and again.drafts[ann["participant_id"]] == "We"
    data = await server_document(server.url, created["workshop_id"], tmp_path / "r.sqlite3", token=created["token"])
    pid = ann["participant_id"]
    assert list(data.selections[pid]) == ["Honesty"] and data.drafts[pid] == "We"
    assert data.matrix[pid]["Honesty"].importance == 5


async def test_two_new_devices_of_one_participant_lose_nothing(server_factory, tmp_path: Path) -> None:
    """Both devices edit before their first sync, then come online: the union arrives."""
    server = server_factory(args=("--secret", "s" * 32))
    created = await create_workshop(server.url, VALUES)
    ann = await join(server.url, created, "Ann")
    wid, pid = created["workshop_id"], ann["participant_id"]
    kw = {"token": ann["token"], "backoff": FAST, "connect": False}
    async with WorkshopClient(server.url, wid, store_path=tmp_path / "phone.sqlite3", **kw) as phone, WorkshopClient(
        server.url, wid, store_path=tmp_path / "laptop.sqlite3", **kw
    ) as laptop:
        for value in VALUES[:4]:
            await phone.select_value(value)
        for value in VALUES[4:]:
            await laptop.select_value(value)
        await phone.rate_value("Honesty", 5, 1)
        await laptop.rate_value("Trust", 2, 2)
        await phone.set_progress("values-matrix", ["values-select"])
        await laptop.set_progress("values-collective", ["values-select"])
        phone.reconnect()
        laptop.reconnect()
        await phone.wait_saved(15)
        await laptop.wait_saved(15)
        await phone.wait_for(lambda: len(phone.my_values) == 8, 10)
    data = await server_document(server.url, wid, tmp_path / "r.sqlite3", token=created["token"])
    assert sorted(data.selections[pid]) == sorted(VALUES)
    assert sorted(data.matrix[pid]) == ["Honesty", "Trust"]
    # Two first progress writes raced: one complete record survives (whole-record writes).
    progress = data.progress[pid]
    assert (progress.stage, progress.completed) in {
        ("values-matrix", ("values-select",)), ("values-collective", ("values-select",))
    }


async def test_auth_off_join_then_edit_at_once_loses_nothing(server, tmp_path: Path) -> None:
    """With --no-auth the client's join() writes only its entry; the server adds the containers."""
    wid = "no-auth-fresh"
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                WorkshopClient(server.url, wid, participant_id=f"p{i}", store_path=tmp_path / f"{i}.sqlite3",
                               backoff=FAST)
            )
            for i in range(6)
        ]
        for c in clients:
            await c.join()
            await _edit_everything(c, c.participant_id)
        async with anyio.create_task_group() as tg:
            for c in clients:
                tg.start_soon(c.wait_saved, 20)
    data = await server_document(server.url, wid, tmp_path / "reader.sqlite3")
    for i in range(6):
        pid = f"p{i}"
        assert pid in data.participants
        assert sorted(data.selections[pid]) == sorted(VALUES), pid
        assert sorted(data.matrix[pid]) == sorted(VALUES[:3]), pid
        assert data.drafts[pid] == f"draft of {pid}"


def test_actions_needing_a_container_are_held_not_created() -> None:
    """Every action that writes into a nested container names it; absent, nothing is written."""
    doc = Doc()
    schema.open_ballot(doc, "b1", "First?", ["yes", "no"], stage="values-select")
    del bind_roots(doc).votes["b1"]  # a ballot without its votes Map (say, from an old page)
    cases = [
        (Intent("select_value", ("ann", "Trust", 1.0)), ("selections", "ann", Map)),
        (Intent("deselect_value", ("ann", "Trust")), ("selections", "ann", Map)),
        (Intent("rate_value", ("ann", "Trust", 3, 4)), ("matrix", "ann", Map)),
        (Intent("set_draft", ("ann", "x")), ("drafts", "ann", Text)),
        (Intent("edit_draft", ("ann", 0), {"insert": "x"}), ("drafts", "ann", Text)),
        (Intent("cast_vote", ("b1", "ann", "yes")), ("votes", "b1", Map)),
        (Intent("retract_vote", ("b1", "ann")), ("votes", "b1", Map)),
    ]
    before = doc.get_update()
    for intent, container in cases:
        assert missing(doc, intent) == container, intent
        validate_on_scratch(doc, intent, container)  # valid, checked without writing
    assert doc.get_update() == before
    for name in ("post_message", "set_progress", "add_participant", "start_workshop", "set_mission"):
        assert container_of(Intent(name)) is None
    with pytest.raises(InvalidAction):  # refused at call time even while held
        validate_on_scratch(doc, Intent("rate_value", ("ann", "Trust", 9, 4)), ("matrix", "ann", Map))
    # The client's join writes only the entry; the server's add_participant still creates them.
    schema.add_participant(doc, "ann", "Ann", "participant", 1.0, containers=False)
    roots = bind_roots(doc)
    assert "ann" in roots.participants and "ann" not in roots.selections and "ann" not in roots.drafts
