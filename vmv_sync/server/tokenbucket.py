"""The token bucket: the one rate rule behind every limit of the server.

``rate`` tokens come back per second, up to ``burst``. Three limits are made of it:
a connection's or a participant's messages and bytes per second
(:class:`~vmv_sync.server.limits.RateLimiter`, 4429), a participant's share of
event-loop time (:class:`~vmv_sync.server.budgets.WorkMeter`, charged after the
fact, so it may run negative), and the HTTP rate limits per address or workshop
(:class:`~vmv_sync.server.ratelimits.Buckets`, 429). The bucket takes the time as
an argument, so each caller keeps its own clock and tests need no sleeps.

Example:
    >>> bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    >>> bucket.take(0.0), bucket.take(0.0), bucket.take(0.0)
    (0.0, 0.0, 1.0)
    >>> bucket.take(1.0)  # one token came back after a second
    0.0
"""

from __future__ import annotations

__all__ = ("TokenBucket",)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst``; full when made at ``now``."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = self.burst
        self.stamp = now

    def level(self, now: float) -> float:
        """The tokens the bucket holds at ``now`` (the bucket is left as it is)."""
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate)

    def refill(self, now: float) -> float:
        """Bring the bucket up to ``now``; returns the tokens it holds."""
        tokens = self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return tokens

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if the bucket holds them: returns 0.0, else the shortfall
        (and takes nothing)."""
        tokens = self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens < cost:
            return cost - tokens
        self.tokens = tokens - cost
        return 0.0

    def charge(self, now: float, cost: float) -> None:
        """Take ``cost`` tokens whatever the bucket holds (the balance may go negative)."""
        self.tokens = self.refill(now) - cost

    def give_back(self, now: float, cost: float = 1.0) -> None:
        """Return ``cost`` tokens taken for something that turned out not to count."""
        self.tokens = min(self.burst, self.refill(now) + cost)
