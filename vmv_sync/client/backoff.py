"""Reconnection policy: exponential backoff with full jitter, and which closes retry.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") draws every
delay uniformly from ``[0, min(cap, base * factor**attempt))``. The *first* retry
after a lost connection is jittered too: when a server restarts, every client
loses its socket at the same instant, and an immediate first retry from all of
them is exactly the reconnect storm this exists to prevent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ("Backoff", "PERMANENT_CLOSE_CODES", "is_permanent_close")

#: Close codes after which retrying cannot help: the credentials or the
#: permission are wrong (contract section 2). Every other code is retried with
#: backoff: 1001 (server restarting), 1006 (connection lost), 1011 (server
#: error), 4408 (silent), 4409 (slow consumer), 4429 (rate or connection cap),
#: and also 4400 (a resync usually cures it; the backoff bounds the cost). 4403 and
#: 4413 about one of our edits start a recovery that drops that edit (recovery.py).
PERMANENT_CLOSE_CODES: frozenset[int] = frozenset({4401, 4403})


def is_permanent_close(code: int | None) -> bool:
    """Whether a close with ``code`` means "do not reconnect"."""
    return code in PERMANENT_CLOSE_CODES


@dataclass(frozen=True)
class Backoff:
    """Delays between connection attempts.

    Attributes:
        base: upper bound of the first delay, in seconds.
        factor: growth of the upper bound per failed attempt.
        cap: the upper bound never exceeds this.

    Example:
        >>> b = Backoff(base=1.0, factor=2.0, cap=8.0)
        >>> [b.ceiling(n) for n in range(5)]
        [1.0, 2.0, 4.0, 8.0, 8.0]
        >>> 0.0 <= b.delay(3, random.Random(1)) < 8.0
        True
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.factor >= 1 and self.cap >= self.base):
            raise ValueError(
                f"backoff needs base > 0, factor >= 1 and cap >= base, got {self!r}"
            )

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before retry number ``attempt`` (0-based)."""
        if attempt > 64:
            return self.cap
        return min(self.cap, self.base * self.factor**attempt)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A full-jitter delay for retry number ``attempt``."""
        return rng.uniform(0.0, self.ceiling(attempt))
