"""Rate limits counted over the whole cluster: one token bucket per key in Redis.

The guess limit is a security limit: 32^8 codes at 10 wrong guesses a minute per
workshop take about 100,000 years; counted per process, N processes would give a
guesser N times the rate. So with several processes the workshop's bucket lives in
Redis: one token bucket per workshop, refilled by a script on Redis' own clock (no
node's clock matters), taken and given back like the local one (server/ratelimits.py).
The per-address limits of the HTTP API (joins, workshops created) are counted the same
way (:class:`SharedAddressLimits`), so N processes do not give an address N times its
joins or creations either.

If Redis does not answer, the process's own bucket decides (never no limit), and keeps
deciding for a second before Redis is asked again, so a lost Redis does not make every
request wait for a connection timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..httperrors import RateLimited
from ..ratelimits import Buckets, HttpLimits
from .bus import REDIS_ERRORS, Bus

__all__ = ("SharedBuckets", "SharedGuesses", "SharedAddressLimits", "address_limits")

logger = logging.getLogger(__name__)

#: after Redis failed to answer, the process's own buckets decide for this long
_AWAY_SECONDS = 1.0

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


class SharedBuckets:
    """Token buckets by key (``PREFIX:{kind}:{key}``) in Redis, shared by every process.

    ``per_second`` tokens come back per second up to ``burst``; 0: no limit. ``take`` and
    ``refund`` take the process's own :class:`~vmv_sync.server.ratelimits.Buckets` of the
    same limit, which decides while Redis does not answer.
    """

    def __init__(self, bus: Bus, kind: str, per_second: float, burst: float, what: str) -> None:
        self.bus = bus
        self.kind = kind
        self.rate = per_second
        self.burst = float(burst)
        self.what = what
        self._script: Any = bus.redis.register_script(_BUCKET)
        # a full bucket is worth forgetting: it refills in burst / rate seconds
        self._ttl_ms = int(1000 * (self.burst / self.rate + 60)) if self.rate > 0 else 60_000
        #: monotonic time until which the local buckets decide (Redis did not answer)
        self._away_until = 0.0
        self._away = False

    async def _call(self, key: str, cost: int) -> float | None:
        """The shortfall of taking (``cost`` 1) or giving back (-1) a token; None: Redis is away."""
        if self._away and time.monotonic() < self._away_until:
            return None
        args = [self.rate / 1000.0, self.burst, cost, self._ttl_ms]
        try:
            shortfall = float(await self._script(keys=[self.bus.key(self.kind, key)], args=args))
        except REDIS_ERRORS as exc:
            if not self._away:
                logger.warning("%s limit: Redis does not answer (%s); this process's buckets decide", self.kind, exc)
            self._away = True
            self._away_until = time.monotonic() + _AWAY_SECONDS
            return None
        if self._away:
            logger.info("%s limit: Redis answers again; counted over the cluster", self.kind)
            self._away = False
        return shortfall

    async def take(self, key: str, local: Buckets) -> None:
        """Spend one of ``key``'s tokens; :class:`RateLimited` if none is left."""
        if self.rate <= 0:
            return
        shortfall = await self._call(key, 1)
        if shortfall is None:
            local.take(key)
        elif shortfall > 0:
            raise RateLimited(self.what, shortfall / self.rate)

    async def refund(self, key: str, local: Buckets) -> None:
        """Give back a token taken for a request that turned out not to count."""
        if self.rate <= 0:
            return
        if await self._call(key, -1) is None:
            local.refund(key)


class SharedGuesses(SharedBuckets):
    """The per-workshop guess bucket of :class:`~vmv_sync.server.ratelimits.HttpLimits`, in Redis."""

    def __init__(self, bus: Bus, per_minute: float, burst: int) -> None:
        super().__init__(bus, "guesses", per_minute / 60.0, burst, "wrong invite codes for this workshop")
        self.addresses: SharedAddressLimits | None = None

    async def take(self, workshop_id: str, local: Buckets) -> None:
        """Spend one of the workshop's guesses; :class:`RateLimited` if none is left."""
        await super().take(workshop_id, local)

    async def refund(self, workshop_id: str, local: Buckets) -> None:
        await super().refund(workshop_id, local)


class SharedAddressLimits:
    """The per-address limits of :class:`~vmv_sync.server.ratelimits.HttpLimits`, in Redis:
    join attempts (``PREFIX:joins:{address}``) and workshops created (``PREFIX:creates:{address}``),
    with the same rates, bursts and messages as the process's own buckets."""

    def __init__(self, bus: Bus, limits: HttpLimits) -> None:
        self.join = SharedBuckets(bus, "joins", limits.join.rate, limits.join.burst, limits.join.what)
        self.create = SharedBuckets(bus, "creates", limits.create.rate, limits.create.burst, limits.create.what)


def address_limits(guesses: object, limits: HttpLimits) -> SharedAddressLimits:
    """The cluster's per-address limits, made once beside its guess limit (same Redis client)."""
    assert isinstance(guesses, SharedGuesses), guesses
    if guesses.addresses is None:
        guesses.addresses = SharedAddressLimits(guesses.bus, limits)
    return guesses.addresses
