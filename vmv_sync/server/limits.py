"""Per-connection limits: frame size (4413) and message rate (4429)."""

from __future__ import annotations

import time

from ..errors import MessageTooLarge, TooManyMessages

__all__ = ("RateLimiter", "check_size")


def check_size(frame: bytes | str, limit: int) -> None:
    if len(frame) > limit:
        raise MessageTooLarge(f"message of {len(frame)} bytes is over the {limit} byte limit")


class RateLimiter:
    """A token bucket: ``rate`` messages per second on average, bursts up to ``burst``."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def hit(self, cost: float = 1.0, what: str = "messages") -> None:
        """Take ``cost`` tokens; raise TooManyMessages (4429) when the bucket is empty."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < cost:
            raise TooManyMessages(f"more than {self.rate:g} {what} per second; slow down and reconnect")
        self._tokens -= cost
