"""One reader for all workshop streams of a process: a stuck workshop never stalls the others."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest

from vmv_sync.server.cluster.bus import Bus
from vmv_sync.server.cluster.streams import Streams

from .conftest import REDIS_URL, _delete_keys

pytestmark = pytest.mark.anyio


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    made = Bus(REDIS_URL, f"vmvtest{uuid.uuid4().hex[:10]}", "n1", 10_000)
    try:
        yield made
    finally:
        await made.aclose()
        _delete_keys(REDIS_URL, made.prefix)


async def test_a_stuck_workshop_does_not_stall_the_others_and_loses_nothing(bus: Bus) -> None:
    streams = Streams(bus)
    stuck, fine = bus.key("in", "stuck"), bus.key("in", "fine")
    release = anyio.Event()
    got: dict[str, list[bytes]] = {"stuck": [], "fine": []}

    async def slow(fields: dict[bytes, bytes]) -> None:
        await release.wait()
        got["stuck"].append(fields[b"i"])

    async def quick(fields: dict[bytes, bytes]) -> None:
        if fields[b"i"] == b"bad":
            raise ValueError("one bad entry")  # logged and skipped
        got["fine"].append(fields[b"i"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(streams.run)
        tg.start_soon(lambda: streams.consume(stuck, b"0-0", slow, what="stuck"))
        tg.start_soon(lambda: streams.consume(fine, b"0-0", quick, what="fine"))
        # far more than the stuck workshop's queue holds, then entries for the other one
        await bus.add([(stuck, {b"i": str(i).encode()}) for i in range(3000)])
        await bus.add([(fine, {b"i": b"bad"})] + [(fine, {b"i": str(i).encode()}) for i in range(50)])
        with anyio.fail_after(5):
            while len(got["fine"]) < 50:
                await anyio.sleep(0.02)
        assert got["stuck"] == []
        release.set()  # the stuck one recovers: it gets everything, in order, once
        with anyio.fail_after(10):
            while len(got["stuck"]) < 3000:
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert got["stuck"] == [str(i).encode() for i in range(3000)]
    assert got["fine"] == [str(i).encode() for i in range(50)]
