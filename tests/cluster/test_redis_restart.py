"""Redis restarted empty mid-run: the processes stay up and nothing acknowledged is lost."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import anyio
import pytest

from .conftest import Cluster, client, create_workshop, free_port, join, stored_doc
from .test_failover import Writer, stored_texts

pytestmark = pytest.mark.anyio

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class PrivateRedis:
    """A redis-server of this test alone, keeping nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server") and not shutil.which(REDIS_SERVER):
        pytest.fail("redis-server is missing: run scripts/services")
    made = PrivateRedis()
    made.start()
    yield made
    made.kill()


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
