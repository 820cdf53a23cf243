"""Wrong invite codes per workshop, counted over the whole cluster.

The guess limit is a security limit: 32^8 codes at 10 wrong guesses a minute per
workshop take about 100,000 years; counted per process, N processes would give a
guesser N times the rate. So with several processes the workshop's bucket lives in
Redis: one token bucket per workshop, refilled by a script on Redis' own clock (no
node's clock matters), taken and given back like the local one (server/ratelimits.py).
If Redis does not answer, the process's own bucket decides (never no limit).
"""

from __future__ import annotations

import logging
from typing import Any

from ..httperrors import RateLimited
from ..ratelimits import Buckets
from .bus import REDIS_ERRORS, Bus

__all__ = ("SharedGuesses",)

logger = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV: tokens per ms, burst, cost (1 take, -1 give back), ttl ms.
# Returns the shortfall (0: taken) as a string (Lua numbers would be truncated).
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local saved = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(saved[1]) or burst
local at = tonumber(saved[2]) or now
level = math.min(burst, level + math.max(0, now - at) * rate)
local shortfall = 0
if cost > 0 then
  if level >= cost then level = level - cost else shortfall = cost - level end
else
  level = math.min(burst, level - cost)
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return tostring(shortfall)
"""


class SharedGuesses:
    """The per-workshop guess bucket of :class:`~vmv_sync.server.ratelimits.HttpLimits`, in Redis."""

    def __init__(self, bus: Bus, per_minute: float, burst: int) -> None:
        self.bus = bus
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._script: Any = bus.redis.register_script(_BUCKET)
        # a full bucket is worth forgetting: it refills in burst / rate seconds
        self._ttl_ms = int(1000 * (self.burst / self.rate + 60)) if self.rate > 0 else 60_000

    async def _call(self, workshop_id: str, cost: int) -> float:
        args = [self.rate / 1000.0, self.burst, cost, self._ttl_ms]
        return float(await self._script(keys=[self.bus.key("guesses", workshop_id)], args=args))

    async def take(self, workshop_id: str, local: Buckets) -> None:
        """Spend one of the workshop's guesses; :class:`RateLimited` if none is left."""
        if self.rate <= 0:
            return
        try:
            shortfall = await self._call(workshop_id, 1)
        except REDIS_ERRORS as exc:
            logger.warning(
                "workshop=%s guess limit: Redis does not answer (%s); this process's bucket decides", workshop_id, exc
            )
            local.take(workshop_id)
            return
        if shortfall > 0:
            raise RateLimited("wrong invite codes for this workshop", shortfall / self.rate)

    async def refund(self, workshop_id: str, local: Buckets) -> None:
        if self.rate <= 0:
            return
        try:
            await self._call(workshop_id, -1)
        except REDIS_ERRORS:
            local.refund(workshop_id)
