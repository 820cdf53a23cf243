"""Failover: the owner killed or paused; what anyone saw saved survives, the fence holds."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import anyio
import pytest
from pycrdt import Array, Map

from .conftest import Cluster, client, create_workshop, eventually, join, owner_of, stored_doc

pytestmark = pytest.mark.anyio


class Writer:
    """Posts numbered messages until stopped; remembers how many it saw saved."""

    def __init__(self, name: str, workshop: Any) -> None:
        self.name = name
        self.client = workshop
        self.posted = 0
        self.saved = 0  # the first ``saved`` messages were acknowledged
        self.stop = anyio.Event()

    def text(self, index: int) -> str:
        return f"{self.name}-{index}"

    async def run(self, *, pause: float = 0.03) -> None:
        while not self.stop.is_set():
            await self.client.post_message(self.text(self.posted))
            self.posted += 1
            await anyio.sleep(pause)
            if self.client.pending_count == 0:
                self.saved = self.posted

    def texts(self, upto: int) -> set[str]:
        return {self.text(i) for i in range(upto)}


def stored_texts(doc: Any) -> set[str]:
    return {str(m["text"]) for m in doc.get("messages", type=Array) if isinstance(m, Map)}


async def test_kill_the_owner_during_writes_loses_nothing_saved(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid, code = made["workshop_id"], made["invite_code"]
    ann = join(b, wid, code, "Ann")
    bob = join(a, wid, code, "Bob")
    async with (
        client(a, wid, made["token"]) as fay,
        client(b, wid, ann["token"]) as ann_client,
        client(b, wid, bob["token"]) as bob_client,
    ):
        for each in (fay, ann_client, bob_client):
            await each.wait_connected(10)
        await ann_client.wait_for(lambda: made["participant_id"] in ann_client.online_participants, 10)
        writers = [Writer("fay", fay), Writer("ann", ann_client), Writer("bob", bob_client)]
        async with anyio.create_task_group() as tg:
            for writer in writers:
                tg.start_soon(writer.run)
            await anyio.sleep(1.0)
            assert owner_of(cluster.prefix, wid) == "a"
            fay_saved = writers[0].saved
            a.kill()  # kill -9 of the owner, mid-burst
            killed = time.monotonic()
            writers[0].stop.set()  # fay's server is gone: she is offline now
            # the survivors' clients reconnect to b, which takes the workshop over
            await eventually(lambda: owner_of(cluster.prefix, wid) == "b", 5, "b owns the workshop")
            await anyio.sleep(0.5)
            for writer in writers[1:]:
                writer.stop.set()
        for each in (ann_client, bob_client):
            await each.wait_saved(10)
        converged = time.monotonic() - killed
        # every replica holds the same messages
        await ann_client.wait_for(lambda: len(ann_client.messages) == len(bob_client.messages), 5)
        assert {m.text for m in ann_client.messages} == {m.text for m in bob_client.messages}
        # presence of the dead process's client has left the survivors' view
        await ann_client.wait_for(lambda: made["participant_id"] not in ann_client.online_participants, 5)
        gone = time.monotonic() - killed
    doc = await stored_doc(cluster.db, wid)
    texts = stored_texts(doc)
    assert writers[0].texts(fay_saved) <= texts  # what fay saw saved before the kill
    for writer in writers[1:]:
        assert writer.texts(writer.posted) <= texts  # everything the survivors wrote
    assert {m.text for m in ann_client.messages} == texts
    assert converged < 7.0, f"clients took {converged:.1f} s to converge after the kill"
    assert gone < 7.0
    print(f"failover: converged {converged:.2f} s after kill -9; presence gone after {gone:.2f} s")


async def test_a_killed_relay_s_clients_leave_presence_within_seconds(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(a, wid, made["invite_code"], "Ann")
    async with client(a, wid, made["token"]) as fay, client(b, wid, ann["token"]) as ann_client:
        await fay.wait_for(lambda: ann["participant_id"] in fay.online_participants, 10)
        b.kill()
        killed = time.monotonic()
        await fay.wait_for(lambda: ann["participant_id"] not in fay.online_participants, 6)
        assert time.monotonic() - killed < 5.0
        del ann_client


async def test_a_paused_owner_commits_nothing_after_its_successor(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(b, wid, made["invite_code"], "Ann")
    async with client(a, wid, made["token"]) as fay, client(b, wid, ann["token"]) as ann_client:
        await fay.wait_connected(10)
        await ann_client.wait_connected(10)
        await fay.post_message("before the pause")
        await fay.wait_saved(10)
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            # the lease lapses; ann's relay stands down, she reconnects and b takes over
            await eventually(lambda: owner_of(cluster.prefix, wid) == "b", 8, "b owns the workshop")
            await ann_client.post_message("while a sleeps")
            await ann_client.wait_saved(10)
            # fay writes to the paused owner: it sits in a's socket buffer
            await fay.post_message("from the paused owner")
            await anyio.sleep(0.3)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        # a wakes: its renewal fails (the lease is b's), its commit is refused (stale epoch),
        # fay is closed and reconnects to a, now a relay of b: her message is saved by b
        await fay.wait_saved(15)
        await ann_client.wait_for(lambda: "from the paused owner" in {m.text for m in ann_client.messages}, 10)
    assert owner_of(cluster.prefix, wid) == "b"
    doc = await stored_doc(cluster.db, wid)
    assert stored_texts(doc) == {"before the pause", "while a sleeps", "from the paused owner"}
    log = "".join(a.log)
    assert "lease lost" in log  # a knew it had lost the workshop when it woke up
