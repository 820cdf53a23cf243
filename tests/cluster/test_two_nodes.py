"""Two processes, one workshop: everything crosses both ways, one judge for every rule."""

from __future__ import annotations

import anyio
import httpx
import pytest
from pycrdt import Map, Text

from tests.yclient import YClient

from .conftest import Cluster, client, create_workshop, eventually, join, owner_of, state, stored_doc

pytestmark = pytest.mark.anyio


async def test_clients_on_two_processes_share_one_workshop(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid, code = made["workshop_id"], made["invite_code"]
    assert owner_of(cluster.prefix, wid) == "a"
    ann = join(b, wid, code, "Ann")  # a join through the relay: the owner writes it
    bob = join(a, wid, code, "Bob")
    async with (
        client(a, wid, made["token"]) as fay,
        client(b, wid, ann["token"]) as ann_client,
        client(b, wid, bob["token"]) as bob_client,
    ):
        for each in (fay, ann_client, bob_client):
            await each.wait_connected(10)
        await ann_client.post_message("hello from b")
        await fay.post_message("hello from a")
        await fay.set_mission("We help")
        await bob_client.toggle_value("Honesty")
        for each in (fay, ann_client, bob_client):
            await each.wait_saved(10)
        for each in (fay, ann_client, bob_client):
            await each.wait_for(lambda c=each: len(c.messages) == 2 and c.mission == "We help", 10)
        await ann_client.edit_mission(7, insert=" families")
        await fay.wait_for(lambda: fay.mission == "We help families", 10)
        # presence crosses both ways
        await fay.wait_for(lambda: {ann["participant_id"], bob["participant_id"]} <= set(fay.online_participants), 10)
        await ann_client.wait_for(lambda: made["participant_id"] in ann_client.online_participants, 10)
        # /state is the same from each process
        token = made["token"]
        await eventually(lambda: state(a, wid, token) == state(b, wid, token), what="identical /state")
        assert sorted(m["text"] for m in state(b, wid, token)["messages"]) == ["hello from a", "hello from b"]
    doc = await stored_doc(cluster.db, wid)
    assert str(doc.get("mission", type=Text)) == "We help families"
    # the owner's fenced commits are counted like a single process's
    scrape = httpx.get(f"{a.url}/metrics", timeout=10).text
    committed = [line for line in scrape.splitlines() if line.startswith("vmv_updates_committed_total ")]
    assert committed and float(committed[0].split()[1]) >= 5


async def test_a_write_rule_is_judged_by_the_owner_whichever_process_receives_it(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(b, wid, made["invite_code"], "Ann")
    for node in (b, a):  # through the relay, then on the owner itself
        async with YClient(f"{node.ws(wid)}?token={ann['token']}") as peer:
            with anyio.fail_after(10):
                await peer.synced.wait()
            # a participant may not rename the workshop (meta is the facilitator's)
            peer.doc.get("meta", type=Map)["title"] = "mine now"
            assert await peer.wait_closed(10) == 4403
    doc = await stored_doc(cluster.db, wid)
    assert doc.get("meta", type=Map)["title"] == "Cluster"


async def test_every_sync_step_1_through_a_relay_is_answered(cluster: Cluster) -> None:
    from vmv_sync.protocol import encode_sync_step1

    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    async with YClient(f"{b.ws(wid)}?token={made['token']}") as peer:
        with anyio.fail_after(10):
            await peer.synced.wait()
        before = peer.received_updates
        for _ in range(3):  # y-websocket peers count their answers: each is answered
            await peer.send_raw(encode_sync_step1(peer.doc.get_state()))
        await peer.wait_for(lambda: peer.received_updates >= before + 3, 10)
