"""One peer's send path: direct writes, the queue behind them, and coalescing."""

from __future__ import annotations

import anyio
import pytest
from pycrdt import Array, Doc

from vmv_sync.errors import SlowConsumer
from vmv_sync.protocol import (
    Awareness,
    Saved,
    SyncUpdate,
    decode_awareness_update,
    encode_awareness,
    encode_awareness_update,
    encode_saved,
    encode_sync_update,
    parse_message,
)
from vmv_sync.server.connection import Connection, coalesce_frames


class FakeChannel:
    """A socket whose writes can be paused, like a transport over its high-water mark."""

    def __init__(self) -> None:
        self.paused = False
        self.resumed = anyio.Event()
        self.written: list[bytes] = []

    def send_nowait(self, frame: bytes) -> bool:
        if self.paused:
            return False
        self.written.append(frame)
        return True

    async def send(self, frame: bytes) -> None:
        while self.paused:
            await self.resumed.wait()
        self.written.append(frame)


def _frames(n: int) -> list[bytes]:
    return [b"\x00\x00\x01" + bytes([i]) for i in range(n)]  # sync step 1s: never merged


@pytest.mark.anyio
async def test_direct_writes_never_overtake_queued_frames() -> None:
    channel = FakeChannel()
    conn = Connection("w", channel)
    f = _frames(4)
    conn.enqueue(f[0])  # nothing pending: written at once
    assert channel.written == [f[0]]
    channel.paused = True
    conn.enqueue(f[1])  # the socket cannot take it: queued
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run_writer)
        await anyio.wait_all_tasks_blocked()  # the writer holds f[1], waiting for the socket
        channel.paused = False  # writable again, but f[1] is still in flight ...
        conn.enqueue(f[2])  # ... so this one must queue behind it, not be written now
        assert channel.written == [f[0]]
        channel.resumed.set()
        await anyio.wait_all_tasks_blocked()  # the writer sent f[1], f[2] and waits again
        assert channel.written == f[:3]
        conn.enqueue(f[3])  # drained: direct again
        assert channel.written == f
        conn.fail(SlowConsumer("test over"))


@pytest.mark.anyio
async def test_full_queue_closes_the_peer_with_4409() -> None:
    channel = FakeChannel()
    channel.paused = True
    conn = Connection("w", channel, queue_size=3)
    for frame in _frames(4):
        conn.enqueue(frame)
    assert conn.close_error is not None and conn.close_error.code == 4409
    assert channel.written == []


def test_updates_and_awareness_runs_merge_in_order() -> None:
    source = Doc()
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    for i in range(5):
        source.get("messages", type=Array).append(i)
    frames = [encode_sync_update(u) for u in updates[:3]]
    frames.append(encode_saved(2))
    frames += [encode_sync_update(u) for u in updates[3:]]
    frames.append(encode_awareness(encode_awareness_update([(1, 1, '{"x": 1}'), (2, 1, '{"y": 1}')])))
    frames.append(encode_awareness(encode_awareness_update([(1, 2, '{"x": 2}')])))

    out = [parse_message(f) for f in coalesce_frames(frames)]

    assert [type(m) for m in out] == [SyncUpdate, Saved, SyncUpdate, Awareness]
    replica = Doc()
    for message in out:
        if isinstance(message, SyncUpdate):
            replica.apply_update(message.update)
    assert replica.get("messages", type=Array).to_py() == [0, 1, 2, 3, 4]
    assert isinstance(out[3], Awareness)
    entries = {e.client_id: (e.clock, e.state) for e in decode_awareness_update(out[3].update)}
    assert entries == {1: (2, {"x": 2}), 2: (1, {"y": 1})}


def test_single_frames_pass_through() -> None:
    frame = encode_saved(3)
    assert coalesce_frames([frame]) == [frame]
