"""Per-connection limits: frame size (4413) and message rate (4429)."""

from __future__ import annotations

import time

from ..errors import MessageTooLarge, TooManyMessages
from .tokenbucket import TokenBucket

__all__ = ("RateLimiter", "check_size")


def check_size(frame: bytes | str, limit: int) -> None:
    if len(frame) > limit:
        raise MessageTooLarge(f"message of {len(frame)} bytes is over the {limit} byte limit")


class RateLimiter(TokenBucket):
    """A token bucket: ``rate`` messages per second on average, bursts up to ``burst``."""

    __slots__ = ()

    def __init__(self, rate: float, burst: int) -> None:
        super().__init__(rate, burst, time.monotonic())

    def hit(self, cost: float = 1.0, what: str = "messages") -> None:
        """Take ``cost`` tokens; raise TooManyMessages (4429) when the bucket is empty."""
        if self.take(time.monotonic(), cost):
            raise TooManyMessages(f"more than {self.rate:g} {what} per second; slow down and reconnect")
