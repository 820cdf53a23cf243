"""Removal and connection caps hold over the whole cluster, and presence details cross."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from tests.yclient import YClient

from .conftest import Cluster, client, create_workshop, join

pytestmark = pytest.mark.anyio


async def test_a_revocation_on_one_process_closes_the_participant_on_the_other(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(b, wid, made["invite_code"], "Ann")
    async with (
        YClient(f"{b.ws(wid)}?token={ann['token']}") as on_b,
        YClient(f"{a.ws(wid)}?token={ann['token']}") as on_a,
    ):
        with anyio.fail_after(10):
            await on_b.synced.wait()
            await on_a.synced.wait()
        # removed through b (the relay): closed on a (the owner) and on b, at once
        started = time.monotonic()
        answer = httpx.post(
            f"{b.url}/api/workshops/{wid}/participants/{ann['participant_id']}/revoke",
            headers={"authorization": f"Bearer {made['token']}", "content-type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert await on_b.wait_closed(5) == 4401
        assert await on_a.wait_closed(5) == 4401
        assert time.monotonic() - started < 2.0
    # and neither process lets the token back in
    for node in (a, b):
        async with YClient(f"{node.ws(wid)}?token={ann['token']}") as again:
            assert await again.wait_closed(5) == 4401


async def test_connections_per_participant_count_on_every_process(cluster: Cluster) -> None:
    env = {"VMV_MAX_CONNECTIONS_PER_PARTICIPANT": "2"}
    a = cluster.start("a", env=env)
    b = cluster.start("b", env=env)
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(a, wid, made["invite_code"], "Ann")
    url_a, url_b = f"{a.ws(wid)}?token={ann['token']}", f"{b.ws(wid)}?token={ann['token']}"
    async with YClient(url_a) as first, YClient(url_b) as second:
        with anyio.fail_after(10):
            await first.synced.wait()
            await second.synced.wait()
        async with YClient(url_b) as third:
            assert await third.wait_closed(5) == 4429


async def test_typing_and_cursors_cross_both_ways(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(b, wid, made["invite_code"], "Ann")
    async with client(a, wid, made["token"]) as fay:
        async with client(b, wid, ann["token"]) as ann_client:
            await fay.wait_for(lambda: ann["participant_id"] in fay.online_participants, 10)
            ann_client.set_typing(True)
            ann_client.move_cursor(0.25, 0.5, "values")
            await fay.wait_for(lambda: ann["participant_id"] in fay.typing_users, 10)
            await fay.wait_for(lambda: (c := fay.cursor_of(ann["participant_id"])) is not None and c.x == 0.25, 10)
            fay.move_cursor(0.75, 0.1, "values")
            await ann_client.wait_for(
                lambda: (c := ann_client.cursor_of(made["participant_id"])) is not None and c.x == 0.75, 10
            )
        # ann closed cleanly on b: she leaves fay's view on a at once, not after a timeout
        closed = time.monotonic()
        await fay.wait_for(lambda: ann["participant_id"] not in fay.online_participants, 5)
        assert time.monotonic() - closed < 1.0


async def test_wrong_invite_codes_are_counted_over_the_cluster(cluster: Cluster) -> None:
    env = {"VMV_INVITE_GUESS_RATE": "1", "VMV_INVITE_GUESS_BURST": "3"}
    a = cluster.start("a", env=env)
    b = cluster.start("b", env=env)
    wid = create_workshop(a)["workshop_id"]

    def guess(node: object) -> int:
        url = f"{node.url}/api/workshops/{wid}/join"  # type: ignore[attr-defined]
        return httpx.post(url, json={"invite_code": "WRONG234", "name": "Eve"}, timeout=10).status_code

    # two wrong codes on each process: per process that is within the burst of 3,
    # over the cluster it is not
    assert [guess(a), guess(b), guess(a)] == [403, 403, 403]
    assert guess(b) == 429
    assert guess(a) == 429


async def test_a_late_relay_sees_presence_at_once_and_routed_clients_cost_redis_nothing(cluster: Cluster) -> None:
    import redis

    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(a, wid, made["invite_code"], "Ann")
    async with client(a, wid, made["token"]) as fay:
        await fay.post_message("only the owner's clients so far")
        await fay.wait_saved(10)
        r = redis.Redis.from_url(cluster.redis_url)
        try:
            assert r.xlen(f"{cluster.prefix}:out:{wid}") == 0  # nothing published: nobody elsewhere
        finally:
            r.close()
        started = time.monotonic()
        async with client(b, wid, ann["token"]) as ann_client:  # b's relay starts now
            await ann_client.wait_for(lambda: made["participant_id"] in ann_client.online_participants, 5)
            assert time.monotonic() - started < 3.0  # not after fay's next renewal (15 s)
            await ann_client.wait_for(lambda: len(ann_client.messages) == 1, 5)
            await fay.post_message("now published")
            await ann_client.wait_for(lambda: len(ann_client.messages) == 2, 5)


async def test_a_relay_stopped_cleanly_takes_its_clients_presence_along_at_once(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(a, wid, made["invite_code"], "Ann")
    async with client(a, wid, made["token"]) as fay, client(b, wid, ann["token"]):
        await fay.wait_for(lambda: ann["participant_id"] in fay.online_participants, 10)
        stopping = time.monotonic()
        await anyio.to_thread.run_sync(b.stop)  # SIGTERM: a clean shutdown
        await fay.wait_for(lambda: ann["participant_id"] not in fay.online_participants, 5)
        assert time.monotonic() - stopping < 1.5


async def test_a_participant_s_message_rate_counts_its_connections_on_every_process(cluster: Cluster) -> None:
    env = {"VMV_RATE_LIMIT": "1", "VMV_RATE_BURST": "20"}
    a = cluster.start("a", env=env)
    b = cluster.start("b", env=env)
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(a, wid, made["invite_code"], "Ann")
    me = {"user": {"id": ann["participant_id"], "name": "Ann", "role": "participant"}}
    async with (
        YClient(f"{a.ws(wid)}?token={ann['token']}") as on_a,
        YClient(f"{b.ws(wid)}?token={ann['token']}") as on_b,
    ):
        with anyio.fail_after(10):
            await on_a.synced.wait()
            await on_b.synced.wait()
        # 12 frames on each process: within the burst of 20 for each, not for both together
        for _ in range(12):
            await on_a.set_awareness(me)
            await on_b.set_awareness(me)
        with anyio.fail_after(10):
            while on_a.close_code is None and on_b.close_code is None:
                await anyio.sleep(0.05)
        assert 4429 in (on_a.close_code, on_b.close_code)
