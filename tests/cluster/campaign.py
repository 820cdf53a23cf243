"""A fault campaign against a real cluster: random kills, pauses and Redis restarts under writes.

Three processes share a workshop; two clients per process post messages without a
pause while, every second or two, one fault happens: a process is killed (``kill -9``)
and started again on its port, a process is paused (``SIGSTOP``) past its lease and
resumed, or Redis is killed and started again empty. At the end every process runs,
every client must get everything it wrote acknowledged, every acknowledged message
must be in PostgreSQL, and every replica must hold the same messages as PostgreSQL.

The short version runs in CI (tests/cluster/test_campaign.py); the long one is a
documented command (docs/scaling.md):

    .venv/bin/python -m tests.cluster.campaign --seconds 120 --seed 7
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from .conftest import Cluster, PrivateRedis, _delete_keys, client, create_workshop, join, stored_doc
from .test_failover import Writer, stored_texts

__all__ = ("campaign",)


async def campaign(cluster: Cluster, redis: PrivateRedis, *, seconds: float, seed: int) -> dict[str, Any]:
    """Run the campaign on ``cluster`` (its processes not yet started); returns what happened."""
    rng = random.Random(seed)
    nodes = [cluster.start(name, redis_url=redis.url) for name in ("a", "b", "c")]
    made = create_workshop(nodes[0])
    wid = made["workshop_id"]
    tokens = [join(nodes[i % 3], wid, made["invite_code"], f"P{i}")["token"] for i in range(6)]
    faults: list[str] = []
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client(nodes[i % 3], wid, token)) for i, token in enumerate(tokens)]
        writers = [Writer(f"w{i}", person) for i, person in enumerate(clients)]
        async with anyio.create_task_group() as tg:
            for writer in writers:
                tg.start_soon(lambda w=writer: w.run(pause=0.05))
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await anyio.sleep(rng.uniform(0.8, 2.0))
                faults.append(await _fault(rng, nodes, redis))
            for writer in writers:
                writer.stop.set()
        for person in clients:
            await person.wait_saved(60)
        expected = set().union(*(w.texts(w.posted) for w in writers))
        for person in clients:
            await person.wait_for(lambda p=person: {m.text for m in p.messages} >= expected, 30)
        replicas = [{m.text for m in p.messages} for p in clients]
    for node in nodes:
        assert node.proc is not None and node.proc.poll() is None, "a process died on its own"
    stored = stored_texts(await stored_doc(cluster.db, wid))
    assert expected <= stored, f"acknowledged but not stored: {sorted(expected - stored)[:5]}"
    for replica in replicas:
        assert replica == stored
    return {"faults": faults, "messages": len(expected), "seconds": seconds, "seed": seed}


async def _fault(rng: random.Random, nodes: list[Any], redis: PrivateRedis) -> str:
    """One fault, undone before returning; its description."""
    kind = rng.choice(["kill", "kill", "pause", "redis"])
    node = rng.choice(nodes)
    name = node.env["VMV_NODE_ID"]
    if kind == "kill":
        node.kill()
        await anyio.sleep(rng.uniform(0.2, 1.0))
        node.start(node.port)
        return f"kill -9 {name}"
    if kind == "pause":
        os.kill(node.proc.pid, signal.SIGSTOP)
        await anyio.sleep(float(node.env["VMV_CLUSTER_LEASE_SECONDS"]) + rng.uniform(0.2, 1.0))
        os.kill(node.proc.pid, signal.SIGCONT)
        return f"pause {name}"
    redis.kill()
    await anyio.sleep(rng.uniform(0.2, 1.0))
    redis.start()
    return "redis restart"


async def _main(seconds: float, seed: int) -> None:
    from tests.storage.conftest import fresh_pg_database

    prefix = f"vmvcampaign{uuid.uuid4().hex[:8]}"
    redis = PrivateRedis()
    redis.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with fresh_pg_database() as db:
                cluster = Cluster(db, prefix, Path(tmp), redis_url=redis.url)
                try:
                    result = await campaign(cluster, redis, seconds=seconds, seed=seed)
                finally:
                    for node in cluster.nodes:
                        if node.proc is not None and node.proc.poll() is None:
                            node.kill()
                    _delete_keys(redis.url, prefix)
    finally:
        redis.kill()
    print(
        f"campaign passed: {result['messages']} messages, {len(result['faults'])} faults: {', '.join(result['faults'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="A fault campaign against a real three-process cluster.")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    anyio.run(_main, args.seconds, args.seed)


if __name__ == "__main__":
    main()
