"""Join attempts and workshops created per address are counted over the whole cluster
(server/cluster/guesses.py), and each process's own buckets decide while Redis is away."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ServerProcess

from .conftest import Cluster, PrivateRedis, create_workshop

pytestmark = pytest.mark.anyio


def try_join(node: ServerProcess, workshop_id: str, code: str) -> httpx.Response:
    return httpx.post(
        f"{node.url}/api/workshops/{workshop_id}/join", json={"invite_code": code, "name": "Eve"}, timeout=15
    )


def try_create(node: ServerProcess) -> httpx.Response:
    return httpx.post(f"{node.url}/api/workshops", json={"title": "T", "name": "Fay", "values": ["V"]}, timeout=15)


async def test_join_attempts_per_address_are_counted_over_the_cluster(cluster: Cluster) -> None:
    env = {"VMV_JOIN_RATE": "1", "VMV_JOIN_BURST": "3"}
    a = cluster.start("a", env=env)
    b = cluster.start("b", env=env)
    made = create_workshop(a)
    wid, code = made["workshop_id"], made["invite_code"]
    # right codes: each attempt counts, on whichever process; per process these are
    # within the burst of 3, over the cluster they are not
    assert [try_join(n, wid, code).status_code for n in (a, b, a)] == [200, 200, 200]
    refused = try_join(b, wid, code)
    assert refused.status_code == 429, refused.text
    assert "join attempts from your address" in refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert try_join(a, wid, code).status_code == 429
    # the workshop's other limits are untouched: no wrong guess was made
    assert try_join(a, wid, "WRONG234").status_code == 429  # still this address's join limit


async def test_workshops_created_per_address_are_counted_over_the_cluster(cluster: Cluster) -> None:
    env = {"VMV_WORKSHOP_CREATE_RATE": "1", "VMV_WORKSHOP_CREATE_BURST": "2"}
    a = cluster.start("a", env=env)
    b = cluster.start("b", env=env)
    assert [try_create(a).status_code, try_create(b).status_code] == [201, 201]
    refused = try_create(a)
    assert refused.status_code == 429, refused.text
    assert "workshops created from your address" in refused.text
    assert try_create(b).status_code == 429


async def test_while_redis_is_away_each_process_s_own_bucket_decides(
    cluster: Cluster, private_redis: PrivateRedis
) -> None:
    env = {"VMV_JOIN_RATE": "1", "VMV_JOIN_BURST": "3", "VMV_INVITE_GUESS_BURST": "50"}
    a = cluster.start("a", redis_url=private_redis.url, env=env)
    b = cluster.start("b", redis_url=private_redis.url, env=env)
    wid = create_workshop(a)["workshop_id"]
    assert try_join(a, wid, "WRONG234").status_code == 403  # counted in Redis: 2 left there
    private_redis.kill()
    # never no limit: a's own bucket (full: Redis counted until now) takes 3, then refuses
    assert [try_join(a, wid, "WRONG234").status_code for _ in range(3)] == [403, 403, 403]
    assert try_join(a, wid, "WRONG234").status_code == 429
    # b counts for itself too
    assert [try_join(b, wid, "WRONG234").status_code for _ in range(4)] == [403, 403, 403, 429]
