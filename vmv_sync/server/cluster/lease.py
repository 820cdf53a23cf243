"""Owner leases and node heartbeats in Redis.

A workshop's owner holds ``p:lease:{wid}`` = its node id, taken with ``SET NX PX``.
It is renewed by a compare-and-renew script that only extends the key while it
still holds *this* node's id: an owner that was paused past its lease, whose key
expired and was taken by a successor, must never take it back (docmost's Redis sync
renewed unconditionally). Released by compare-and-delete, so a node that lost its
lease cannot delete its successor's.

A lease alone is not safety: a paused owner does not know it lost the lease until it
runs again, and may be mid-commit. The store's fencing epoch is what refuses its
commits (``claim_epoch`` / ``append(epoch=)``); the lease only decides who should
be working, and makes failover quick.

Heartbeats: each node keeps ``p:node:{node}`` alive with a short TTL; an owner drops
the remote connections of a node whose key expired (its presence leaves everyone's
view within seconds of a ``kill -9``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .bus import Bus

__all__ = ("Leases", "HEARTBEAT_MS", "HEARTBEAT_EVERY")

#: a node not heard of for this long is dead
HEARTBEAT_MS = 2000
#: seconds between two heartbeats
HEARTBEAT_EVERY = 0.5

_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    """One node's leases (``ttl`` seconds) and heartbeat."""

    def __init__(self, bus: Bus, ttl: float) -> None:
        self.bus = bus
        self.ttl_ms = int(ttl * 1000)
        self._renew: Any = bus.redis.register_script(_RENEW)
        self._release: Any = bus.redis.register_script(_RELEASE)

    def _key(self, workshop_id: str) -> str:
        return self.bus.key("lease", workshop_id)

    async def try_acquire(self, workshop_id: str) -> bool:
        """Take the lease if nobody holds it."""
        return bool(await self.bus.redis.set(self._key(workshop_id), self.bus.node, nx=True, px=self.ttl_ms))

    async def renew(self, workshop_ids: Sequence[str]) -> list[bool]:
        """Extend each lease still held by this node (one round trip); False: lost."""
        if not workshop_ids:
            return []
        answer = await self._renew(keys=[self._key(w) for w in workshop_ids], args=[self.bus.node, self.ttl_ms])
        return [bool(x) for x in answer]

    async def release(self, workshop_id: str) -> None:
        """Give the lease up, if it is still this node's."""
        await self._release(keys=[self._key(workshop_id)], args=[self.bus.node])

    async def owners(self, workshop_ids: Sequence[str]) -> list[str | None]:
        """The node holding each lease, None where nobody does."""
        if not workshop_ids:
            return []
        values = await self.bus.redis.mget([self._key(w) for w in workshop_ids])
        return [None if v is None else bytes(v).decode() for v in values]

    async def beat(self) -> None:
        await self.bus.redis.set(self.bus.key("node", self.bus.node), b"1", px=HEARTBEAT_MS)

    async def alive(self, nodes: Sequence[str]) -> dict[str, bool]:
        if not nodes:
            return {}
        values = await self.bus.redis.mget([self.bus.key("node", n) for n in nodes])
        return {n: v is not None for n, v in zip(nodes, values, strict=True)}
