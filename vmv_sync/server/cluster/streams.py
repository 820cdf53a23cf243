"""One reader for every workshop stream of a process: one Redis connection, not one per workshop.

A blocking XREAD holds its connection, so a reader per loaded workshop would hold as
many Redis connections (500 workshops, 500 connections per process). Instead one task
reads all the process's workshop streams with a single XREAD and hands each entry to
its workshop's bounded queue; each workshop consumes its own queue in its own task.

One slow or stuck workshop never stalls the others (yjs/yhub#61): when its queue is
full its stream is left out of the next reads (the entries wait in Redis) and read
again from where it stopped once the queue has room. A new subscription is picked up
by the next read, within :data:`_BLOCK_MS`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .bus import REDIS_ERRORS, Bus

__all__ = ("Streams",)

logger = logging.getLogger(__name__)

#: how long one XREAD waits for entries: also how soon a new subscription is read
_BLOCK_MS = 100
#: entries queued per workshop before its stream is left out of the reads
_QUEUE = 1024

Handler = Callable[[dict[bytes, bytes]], Awaitable[None]]


@dataclass
class _Subscription:
    after: bytes
    send: MemoryObjectSendStream[dict[bytes, bytes]]

    @property
    def room_left(self) -> int:
        stats = self.send.statistics()
        return int(stats.max_buffer_size - stats.current_buffer_used)


class Streams:
    """The process's reader of workshop streams; :meth:`run` is a task of the cluster node."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._subs: dict[str, _Subscription] = {}

    async def consume(self, key: str, after: bytes, handle: Handler, *, what: str) -> None:
        """Hand every entry of ``key`` after ``after`` to ``handle``, in order, until cancelled.

        An entry ``handle`` fails on is logged and skipped.
        """
        send, receive = anyio.create_memory_object_stream[dict[bytes, bytes]](_QUEUE)
        if key in self._subs:
            raise RuntimeError(f"{key} is already read")
        self._subs[key] = _Subscription(after, send)
        try:
            await _drain(receive, handle, what)
        finally:
            if self._subs.get(key) is not None and self._subs[key].send is send:
                del self._subs[key]
            send.close()
            receive.close()

    async def run(self) -> None:
        pause = 0.05
        failing = False
        while True:
            wanted = {key: sub.after for key, sub in self._subs.items() if sub.room_left > 0}
            if not wanted:
                await anyio.sleep(_BLOCK_MS / 1000)
                continue
            try:
                answer: Any = await self.bus.redis.xread(wanted, count=256, block=_BLOCK_MS)
            except REDIS_ERRORS as exc:
                if not failing:
                    logger.warning("workshop streams: Redis read failed (%s); retrying", exc)
                    failing = True
                await anyio.sleep(pause)
                pause = min(1.0, pause * 2)
                continue
            if failing:
                logger.info("workshop streams: Redis answers again")
                failing = False
            pause = 0.05
            for key, entries in _pairs(answer):
                sub = self._subs.get(key)
                if sub is None:
                    continue  # unsubscribed while the read was out
                for entry_id, fields in entries:
                    try:
                        sub.send.send_nowait(fields)
                    except anyio.WouldBlock:
                        break  # full: the rest is read again once there is room
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                        break
                    sub.after = bytes(entry_id)


def _pairs(answer: Any) -> list[tuple[str, list[Any]]]:
    if not answer:
        return []
    if isinstance(answer, dict):  # RESP3
        return [(_text(k), v[0] if v and isinstance(v[0], list) else v) for k, v in answer.items()]
    return [(_text(k), entries) for k, entries in answer]


def _text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


async def _drain(receive: MemoryObjectReceiveStream[dict[bytes, bytes]], handle: Handler, what: str) -> None:
    async for fields in receive:
        try:
            await handle(fields)
        except Exception:
            logger.exception("%s: an entry could not be handled; skipped", what)
