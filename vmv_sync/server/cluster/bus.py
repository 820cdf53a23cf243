"""Redis between server processes: the keys, the streams, and reading them forever.

Why streams and not pub/sub for a workshop's traffic: a stream keeps its entries, so a
reader that lost its connection for a moment resumes after the last id it handled
instead of silently missing what was published meanwhile (and redis-py's asyncio
pub/sub does not even reconnect by itself: redis-py #2089). What a stream cannot give
back (Redis restarted empty, entries trimmed away) is noticed by sequence numbers and
filled from the store (relay.py), never skipped.

Keys, all under ``settings.cluster_prefix`` (``p``):

- ``p:lease:{wid}``: the node owning the workshop (lease.py)
- ``p:node:{node}``: a node's heartbeat (lease.py)
- ``p:in:{wid}``: relays -> owner: a connection opened / a frame / closed / a server edit
- ``p:out:{wid}``: owner -> every relay: committed batches (seqs, origins, acks), awareness
- ``p:to:{node}``: owner -> one node: sync markers, closes, edit replies
- ``p:control``: pub/sub, every node: revocations

Every entry is a flat map of byte strings. The workshop streams are read by one task
per process (streams.py); :func:`follow` reads one stream alone (a node's ``to``
stream). Both log (never re-raise) what one bad entry does, so it cannot stall the
others (yjs/yhub#61: one bad stream entry stalled every room of a process).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ("Bus", "Fields", "follow", "REDIS_ERRORS")

logger = logging.getLogger(__name__)

#: what a lost or restarting Redis raises (redis-py wraps most socket errors, not all)
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

#: one stream entry
Fields = Mapping[bytes, bytes]

#: streams of a workshop nobody writes to vanish after this long
_STREAM_TTL_MS = 3_600_000
#: how long one XREAD waits for entries before it is issued again
_BLOCK_MS = 1000


class Bus:
    """One node's Redis client and key names."""

    def __init__(self, url: str, prefix: str, node: str, maxlen: int) -> None:
        # socket_timeout above the XREAD block time; connects fail fast while Redis is down
        self.redis: Any = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=_BLOCK_MS / 1000 + 4.0, decode_responses=False
        )
        self.prefix = prefix
        self.node = node
        self.maxlen = maxlen

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def add(self, entries: Sequence[tuple[str, Mapping[bytes | str, bytes | str | int]]]) -> None:
        """Append entries (key, fields) in order, in one round trip; each stream gets a TTL."""
        async with self.redis.pipeline(transaction=False) as pipe:
            keys = set()
            for key, fields in entries:
                pipe.xadd(key, dict(fields), maxlen=self.maxlen, approximate=True)
                keys.add(key)
            for key in keys:
                pipe.pexpire(key, _STREAM_TTL_MS)
            await pipe.execute()

    async def last_id(self, key: str) -> bytes:
        """The id of the stream's newest entry (``0-0`` when empty): read after it for what comes next."""
        found = await self.redis.xrevrange(key, "+", "-", count=1)
        return bytes(found[0][0]) if found else b"0-0"

    async def read(self, key: str, after: bytes) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries after ``after``, waiting up to a second for the first."""
        answer = await self.redis.xread({key: after}, count=512, block=_BLOCK_MS)
        if not answer:
            return []
        if isinstance(answer, dict):  # RESP3
            return list(next(iter(answer.values()))[0])
        return list(answer[0][1])


async def follow(
    bus: Bus,
    key: str,
    after: bytes,
    handle: Callable[[dict[bytes, bytes]], Awaitable[None]],
    *,
    what: str,
) -> None:
    """Read ``key`` from ``after`` on, forever, handing each entry to ``handle`` in order.

    A lost Redis is retried with a growing pause (0.05 s to 1 s) and logged once per
    outage; an entry ``handle`` fails on is logged and skipped.
    """
    pause = 0.05
    failing = False
    while True:
        try:
            entries = await bus.read(key, after)
        except REDIS_ERRORS as exc:
            if not failing:
                logger.warning("%s: Redis read failed (%s); retrying", what, exc)
                failing = True
            await anyio.sleep(pause)
            pause = min(1.0, pause * 2)
            continue
        if failing:
            logger.info("%s: Redis answers again", what)
            failing = False
        pause = 0.05
        for entry_id, fields in entries:
            after = entry_id
            try:
                await handle(fields)
            except Exception:
                logger.exception("%s: entry %s could not be handled; skipped", what, entry_id.decode())
