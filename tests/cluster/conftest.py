"""Real clusters for the tests: server processes on PostgreSQL and Redis, on loopback.

Each test gets its own PostgreSQL database (``fresh_pg_database``, dropped at the end)
and its own Redis key prefix (its keys deleted at the end); every server is a real
``server.py`` process on a free port, started with ``--redis`` and ``--node-id``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import ServerProcess
from tests.storage.conftest import fresh_pg_database

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("VMV_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "cluster-test-secret-0123456789abcdef"
#: a short lease keeps failover tests quick (the default is 2.5 s)
LEASE = "1.5"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """One test's database, Redis prefix and server processes."""

    db: str
    prefix: str
    tmp: Path
    redis_url: str = REDIS_URL
    nodes: list[ServerProcess] = field(default_factory=list)

    def start(
        self, name: str, *, redis_url: str | None = None, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> ServerProcess:
        settings = {
            "VMV_REDIS_URL": redis_url or self.redis_url,
            "VMV_CLUSTER_PREFIX": self.prefix,
            "VMV_NODE_ID": name,
            "VMV_SECRET": SECRET,
            "VMV_CLUSTER_LEASE_SECONDS": LEASE,
            "VMV_DATA_DIR": str(self.tmp / name),
            "VMV_AWARENESS_TICK": "0.02",
            **(env or {}),
        }
        node = ServerProcess(self.db, settings, args=args)  # type: ignore[arg-type]
        node.start()
        self.nodes.append(node)
        return node


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    prefix = f"vmvtest{uuid.uuid4().hex[:10]}"
    async with fresh_pg_database() as db:
        made = Cluster(db, prefix, tmp_path)
        try:
            yield made
        finally:
            for node in made.nodes:
                if node.proc is not None and node.proc.poll() is None:
                    node.kill()
                else:
                    node._close_output()
            _delete_keys(made.redis_url, prefix)


@pytest.fixture
def sync_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """``cluster`` for tests that are not async (each hypothesis example runs its own loop)."""
    import anyio

    made: list[Cluster] = []
    stop = threading.Event()
    ready = threading.Event()

    async def hold() -> None:
        async with fresh_pg_database() as db:
            made.append(Cluster(db, f"vmvtest{uuid.uuid4().hex[:10]}", tmp_path))
            ready.set()
            await anyio.to_thread.run_sync(stop.wait)

    holder = threading.Thread(target=anyio.run, args=(hold,), daemon=True)
    holder.start()
    ready.wait(30)
    cluster = made[0]
    try:
        yield cluster
    finally:
        for node in cluster.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.kill()
            else:
                node._close_output()
        _delete_keys(cluster.redis_url, cluster.prefix)
        stop.set()
        holder.join(30)


def _delete_keys(url: str, prefix: str) -> None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except redis.RedisError:
        pass  # a private Redis of the test, already stopped


def create_workshop(node: ServerProcess, title: str = "Cluster") -> dict[str, Any]:
    answer = httpx.post(
        f"{node.url}/api/workshops", json={"title": title, "name": "Fay", "values": ["Honesty", "Courage"]}, timeout=10
    )
    answer.raise_for_status()
    return dict(answer.json())


def join(node: ServerProcess, workshop_id: str, code: str, name: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{node.url}/api/workshops/{workshop_id}/join", json={"invite_code": code, "name": name}, timeout=15
    )
    answer.raise_for_status()
    return dict(answer.json())


def state(node: ServerProcess, workshop_id: str, token: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{node.url}/workshops/{workshop_id}/state?messages=1", headers={"authorization": f"Bearer {token}"}, timeout=10
    )
    answer.raise_for_status()
    return dict(answer.json())


def owner_of(prefix: str, workshop_id: str, url: str = REDIS_URL) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        value = client.get(f"{prefix}:lease:{workshop_id}")
    finally:
        client.close()
    return None if value is None else bytes(value).decode()


async def eventually(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` (every 50 ms) until it returns something true; fail after ``timeout``."""
    import anyio

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        await anyio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")


async def stored_doc(db: str, workshop_id: str) -> Any:
    """The workshop's document as PostgreSQL holds it (no server involved)."""
    from pycrdt import Doc

    from vmv_sync.storage import open_store

    async with open_store(db) as store:
        stored = await store.load(workshop_id)
    doc: Doc[Any] = Doc()
    if stored.snapshot:
        doc.apply_update(stored.snapshot)
    for update in stored.updates:
        doc.apply_update(update)
    return doc


def client(node: ServerProcess | str, workshop_id: str, token: str) -> Any:
    """A Python client of ``node`` (or of a ``ws://host:port`` base) with an in-memory
    replica and a quick reconnect."""
    from vmv_sync.client import Backoff, WorkshopClient
    from vmv_sync.storage import MemoryStore

    base = node if isinstance(node, str) else node.ws_base
    return WorkshopClient(base, workshop_id, token=token, store=MemoryStore(), backoff=Backoff(base=0.2, cap=1.0))


def run_quiet(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


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
