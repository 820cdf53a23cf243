"""Issue 20's hazards of two processes on one store, each as a regression test on two real processes."""

from __future__ import annotations

import anyio
import pytest
from pycrdt import Array, Doc, Map, Text

from tests.yclient import YClient

from .conftest import Cluster, client, create_workshop, eventually, join, state, stored_doc
from .test_failover import stored_texts

pytestmark = pytest.mark.anyio


async def test_compaction_keeps_what_the_other_process_committed(cluster: Cluster) -> None:
    env = {"VMV_COMPACT_UPDATES": "5"}  # compact all the time
    a = cluster.start("a", env=env)
    b = cluster.start("b", env=env)
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(b, wid, made["invite_code"], "Ann")
    async with client(a, wid, made["token"]) as fay, client(b, wid, ann["token"]) as ann_client:
        for i in range(12):  # one commit each: the client would merge what waits to be sent
            await fay.post_message(f"A{i}")
            await fay.wait_saved(15)
            await ann_client.post_message(f"B{i}")
            await ann_client.wait_saved(15)
    texts = stored_texts(await stored_doc(cluster.db, wid))
    assert {f"A{i}" for i in range(12)} | {f"B{i}" for i in range(12)} <= texts

    # the owner compacted (a task after a commit), and nothing of b's clients was lost
    async def snapshots() -> int:
        import asyncpg

        conn = await asyncpg.connect(cluster.db)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM snapshots WHERE workshop_id = $1", wid))
        finally:
            await conn.close()

    with anyio.fail_after(5):
        while not await snapshots():
            await anyio.sleep(0.05)


async def test_a_client_id_squat_is_refused_through_either_process(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(a, wid, made["invite_code"], "Ann")
    bob = join(b, wid, made["invite_code"], "Bob")
    victim = 4242
    async with YClient(f"{a.ws(wid)}?token={ann['token']}", Doc(client_id=victim), saved=True) as owner:
        with anyio.fail_after(10):
            await owner.synced.wait()
        owner.doc.get("mission", type=Text).insert(0, "ann's words")
        await owner.wait_for(lambda: owner.saved_count >= 1)
        for node in (b, a):  # bob squats ann's id through the relay, then on the owner
            async with YClient(f"{node.ws(wid)}?token={bob['token']}", Doc(client_id=victim)) as squatter:
                with anyio.fail_after(10):
                    await squatter.synced.wait()
                squatter.doc.get("mission", type=Text).insert(0, "bob ")
                assert await squatter.wait_closed(10) == 4403
                assert (squatter.close_reason or "").startswith("client id taken")


async def test_containers_are_made_once_whichever_process_a_participant_reaches(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(b, wid, made["invite_code"], "Ann")
    # ann's first connections arrive on both processes at once
    async with client(a, wid, ann["token"]) as on_a, client(b, wid, ann["token"]) as on_b:
        await on_a.select_value("Honesty")
        await on_b.select_value("Courage")
        await on_a.wait_saved(10)
        await on_b.wait_saved(10)
        await on_a.wait_for(lambda: set(on_a.my_values) == {"Honesty", "Courage"}, 10)
    doc = await stored_doc(cluster.db, wid)
    picks = doc.get("selections", type=Map)[ann["participant_id"]]
    assert set(picks.keys()) == {"Honesty", "Courage"}
    got = await eventually(lambda: state(b, wid, made["token"]), what="state")
    assert got == state(a, wid, made["token"])
    assert isinstance(doc.get("messages", type=Array), Array)
