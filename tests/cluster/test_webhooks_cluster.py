"""Webhooks from a cluster (docs/webhooks.md): two processes on one PostgreSQL outbox.

Every process is configured with the same endpoint; a real HTTP receiver on loopback
checks each signature. Whatever process a change goes through, every event arrives,
none is produced twice (the cursor's compare-and-set) or posted by two senders at
once (claims); a sender killed (-9) while posting leaves its claim to expire, and the
other process delivers the event (at least once: the receiver sees its id twice).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ServerProcess
from tests.test_webhooks import _QUEUED, SECRET, Receiver

from .conftest import Cluster, client, create_workshop, eventually, join

pytestmark = pytest.mark.anyio

#: a claim lasts 3 x the timeout + 5 s (webhook_outbox.claim_lease): 11 s here
TIMEOUT = "2"


def hook_env(port: int) -> dict[str, str]:
    return {
        "VMV_WEBHOOK_URLS": f"http://127.0.0.1:{port}/hooks",
        "VMV_WEBHOOK_SECRET": SECRET,
        "VMV_WEBHOOK_QUIET_SECONDS": "0.5",
        "VMV_WEBHOOK_MAX_BACKOFF": "0.5",
        "VMV_WEBHOOK_TIMEOUT": TIMEOUT,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(_free_port())
    made.start()
    yield made
    made.stop()


def kinds(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["type"] for e in events)


def queued_kinds(node: ServerProcess) -> list[str]:
    """The event types ``node`` queued (its log)."""
    return [kind for line in list(node.log) if (m := _QUEUED.search(line.strip())) for kind in m.group(2).split(", ")]


async def outbox_rows(db: str) -> int:
    conn = await asyncpg.connect(db)
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM webhook_outbox"))
    finally:
        await conn.close()


async def test_every_event_once_whichever_process_sees_the_change(cluster: Cluster, receiver: Receiver) -> None:
    a = cluster.start("a", env=hook_env(receiver.port))
    b = cluster.start("b", env=hook_env(receiver.port))
    made = create_workshop(a)  # owned by a
    wid, code, fay = made["workshop_id"], made["invite_code"], {"authorization": f"Bearer {made['token']}"}
    ann = join(b, wid, code, "Ann")  # through the relay
    join(a, wid, code, "Bob")
    async with client(b, wid, made["token"]) as facilitator:  # the stage moves through b
        await facilitator.wait_connected(10)
        await facilitator.set_stage("values-collective")
        await facilitator.wait_saved(10)
    revoked = httpx.post(
        f"{b.url}/api/workshops/{wid}/participants/{ann['participant_id']}/revoke", json={}, headers=fay
    )
    assert revoked.status_code == 200
    assert httpx.get(f"{b.url}/workshops/{wid}/export?format=md", headers=fay, timeout=10).status_code == 200
    expected = Counter({"participant.joined": 3, "stage.changed": 2, "participant.removed": 1, "workshop.exported": 1})

    def arrived() -> bool:
        return kinds(receiver.unique()) == expected

    await eventually(arrived, timeout=30, what=f"the events {dict(expected)}")
    assert await outbox_rows(cluster.db) == 0  # nothing else waits to be sent
    queued = Counter(kind for node in (a, b) for kind in queued_kinds(node))
    assert queued == expected  # both processes examined; each change was queued once
    events = receiver.unique()
    assert not receiver.bad  # every signature verified
    assert kinds(events) == expected  # nothing produced twice (each change has one event id)
    assert sorted(receiver.attempts) == sorted(e["id"] for e in events)  # and none posted twice
    assert all(e["workshop_id"] == wid for e in events)
    joined = sorted(e["data"]["name"] for e in events if e["type"] == "participant.joined")
    assert joined == ["Ann", "Bob", "Fay"]
    order = [e["type"] for e in events]
    assert order.index("participant.joined") < order.index("stage.changed")  # in order per workshop
    stages = [e["data"] for e in events if e["type"] == "stage.changed"]  # a new workshop's, then the move
    assert stages[0]["previous"] is None and stages[1] == {"stage": "values-collective", "previous": stages[0]["stage"]}
    assert next(e for e in events if e["type"] == "participant.removed")["data"] == {
        "participant_id": ann["participant_id"]
    }


async def test_a_sender_killed_while_posting_leaves_the_event_to_the_other(cluster: Cluster) -> None:
    hold = threading.Event()
    receiver = Receiver(_free_port(), hold=hold)  # takes requests and never answers, for now
    receiver.start()
    try:
        a = cluster.start("a", env=hook_env(receiver.port))
        made = create_workshop(a)
        first = await eventually(lambda: list(receiver.attempts), timeout=20, what="a's first post")
        a.kill()  # kill -9 while its post is unanswered: its claim stays until it expires
        killed_at = time.monotonic()
        hold.set()  # the receiver answers from now on
        cluster.start("b", env=hook_env(receiver.port))
        await eventually(lambda: receiver.unique(), timeout=40, what="the event from b (a is dead)")
        waited = time.monotonic() - killed_at
        events = receiver.unique()
        assert [e["type"] for e in events] == ["participant.joined"] and events[0]["id"] == first[0]
        assert events[0]["workshop_id"] == made["workshop_id"] and not receiver.bad
        assert receiver.attempts.count(first[0]) == 2  # at least once: the receiver dedups by id
        assert waited > 3.0, "b posted before a's claim could have expired"
    finally:
        hold.set()
        receiver.stop()
