"""The HTTP API's rate limits: token buckets per client address and per workshop.

Each limit is a :class:`Buckets`, one :class:`~vmv_sync.server.tokenbucket.TokenBucket`
per key, bounded in number; the API's handlers take from them (api.py) and a refusal
is a :class:`~vmv_sync.server.httperrors.RateLimited` (429 with ``Retry-After``).
Whom an address limit counts is :func:`client_key` (server/clientaddr.py, the rule
the transport's connection cap uses too). The limits and their settings are in
docs/security.md, HTTP limits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from starlette.types import Scope

from ..config import Settings
from .clientaddr import address_key
from .httperrors import RateLimited
from .tokenbucket import TokenBucket

__all__ = ("Buckets", "HttpLimits", "http_limits", "client_key")


class Buckets:
    """Token buckets by key (a client address, a workshop id), bounded in number.

    ``per_minute`` tokens come back per minute up to ``burst``; 0 means no limit.
    At most ``max_keys`` buckets are kept: past it, buckets that have filled up
    again (they hold nothing a fresh one would not) go first, then the least
    recently used, so memory stays bounded however many addresses come by.

    Example:
        >>> b = Buckets(60, 2, "requests", clock=lambda: 0.0)
        >>> b.take("a"); b.take("a")
        >>> b.take("a")
        Traceback (most recent call last):
        ...
        vmv_sync.server.httperrors.RateLimited: too many requests; try again in 1 s
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        what: str,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.what = what
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str) -> tuple[TokenBucket, float]:
        """``key``'s bucket (a full one if it had none) and the time now."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            self._evict(now)
        else:
            self._buckets.move_to_end(key)
        return bucket, now

    def _evict(self, now: float) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        full = [key for key, b in list(self._buckets.items())[:64] if b.level(now) >= self.burst]
        for key in full or [next(iter(self._buckets))]:
            del self._buckets[key]

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket; :class:`RateLimited` if there is none."""
        if self.rate <= 0:
            return
        bucket, now = self._bucket(key)
        shortfall = bucket.take(now)
        if shortfall:
            raise RateLimited(self.what, shortfall / self.rate)

    def spent(self, key: str) -> bool:
        """Whether ``key`` has used any of its bucket that has not come back yet."""
        if self.rate <= 0 or key not in self._buckets:
            return False
        bucket, now = self._bucket(key)
        return bucket.refill(now) < self.burst

    def refund(self, key: str) -> None:
        """Give back a token taken for a request that turned out not to count."""
        if self.rate <= 0:
            return
        bucket, now = self._bucket(key)
        bucket.give_back(now)


class HttpLimits:
    """The API's rate limits, built from the settings (docs/security.md, HTTP limits)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.create = Buckets(
            settings.workshop_create_rate, settings.workshop_create_burst,
            "workshops created from your address", clock=clock,
        )  # fmt: skip
        self.join = Buckets(settings.join_rate, settings.join_burst, "join attempts from your address", clock=clock)
        self.guesses = Buckets(
            settings.invite_guess_rate, settings.invite_guess_burst,
            "wrong invite codes for this workshop", clock=clock,
        )  # fmt: skip
        #: wrong codes per (workshop, address): one address's guesses never use up the
        #: workshop's budget for the others (issue 19, finding 6)
        self.address_guesses = Buckets(
            settings.invite_guess_rate, settings.invite_guess_burst,
            "wrong invite codes for this workshop from your address", clock=clock,
        )  # fmt: skip


def http_limits(app: Any) -> HttpLimits:
    """The app's :class:`HttpLimits`, made from ``app.state.settings`` at first use."""
    limits: HttpLimits | None = getattr(app.state, "http_limits", None)
    if limits is None:
        limits = HttpLimits(app.state.settings)
        app.state.http_limits = limits
    return limits


def client_key(scope: Scope) -> str:
    """Whom a rate limit counts: the client's IPv4 address, or its IPv6 /64 network.

    The client is the TCP peer, or, behind a trusted proxy (``forwarded_allow_ips``),
    the address the proxy forwarded; the rule is :func:`~vmv_sync.server.clientaddr.address_key`.
    """
    client = scope.get("client")
    return address_key(client[0] if client else None)
