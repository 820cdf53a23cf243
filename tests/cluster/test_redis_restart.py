"""Redis restarted empty mid-run: the processes stay up and nothing acknowledged is lost."""

from __future__ import annotations

import anyio
import pytest

from .conftest import Cluster, PrivateRedis, client, create_workshop, join, stored_doc
from .test_failover import Writer, stored_texts

pytestmark = pytest.mark.anyio


async def test_redis_restarted_empty_mid_run(cluster: Cluster, private_redis: PrivateRedis) -> None:
    a = cluster.start("a", redis_url=private_redis.url)
    b = cluster.start("b", redis_url=private_redis.url)
    made = create_workshop(a)
    wid = made["workshop_id"]
    ann = join(b, wid, made["invite_code"], "Ann")
    async with client(a, wid, made["token"]) as fay, client(b, wid, ann["token"]) as ann_client:
        await fay.wait_connected(10)
        await ann_client.wait_connected(10)
        writers = [Writer("fay", fay), Writer("ann", ann_client)]
        async with anyio.create_task_group() as tg:
            for writer in writers:
                tg.start_soon(writer.run)
            await anyio.sleep(0.8)
            saved_before = [w.saved for w in writers]
            private_redis.kill()  # gone, with every lease, stream and heartbeat
            await anyio.sleep(1.5)
            private_redis.start()  # back, empty
            await anyio.sleep(1.0)
            for writer in writers:
                writer.stop.set()
        for each in (fay, ann_client):
            await each.wait_saved(20)
        await fay.wait_for(lambda: len(fay.messages) == len(ann_client.messages) == sum(w.posted for w in writers), 10)
    for node in (a, b):
        assert "Traceback" not in "".join(node.log)
    assert a.proc is not None and a.proc.poll() is None  # both processes stayed up
    assert b.proc is not None and b.proc.poll() is None
    texts = stored_texts(await stored_doc(cluster.db, wid))
    for writer, before in zip(writers, saved_before, strict=True):
        assert writer.texts(before) <= texts  # acknowledged before the restart
        assert writer.texts(writer.posted) <= texts  # and everything since, resent after it
