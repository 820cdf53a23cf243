"""The connector loop: keep one connection open when wanted, forever, until closed.

After any loss it waits a full-jitter backoff (docs/client.md) before the next
attempt, counting failed attempts since the last established connection; a
permanent refusal, or :meth:`Connector.stop`, parks it until :meth:`Connector.wake`.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from .backoff import Backoff

__all__ = ("Connector",)


class Connector:
    """Runs ``attempt()`` (one connection, True if it was established) in a loop.

    Args:
        backoff: the delays between attempts.
        rng: the jitter's random source.
        attempt: opens one connection and returns when it ends.
        online: connect at once (False: start parked until :meth:`wake`).
    """

    def __init__(
        self,
        backoff: Backoff,
        rng: random.Random,
        attempt: Callable[[], Awaitable[bool]],
        *,
        online: bool = True,
    ) -> None:
        self.backoff = backoff
        self._rng = rng
        self._attempt = attempt
        #: the client wants a connection (False after ``disconnect()`` or close)
        self.want_online = online
        #: the server refused for good: no retry until :meth:`wake`
        self.permanent = False
        #: the next attempt starts without waiting (``reconnect()``, a recovery)
        self.skip_backoff = False
        self._wake = anyio.Event()
        #: monotonic time of every connection attempt (diagnostics, tests)
        self.attempts: deque[float] = deque(maxlen=1000)

    def wake(self, *, resume: bool = False) -> None:
        """Attempt now (skipping a backoff); ``resume`` also lifts a permanent refusal."""
        if resume:
            self.want_online = True
            self.permanent = False
        self.skip_backoff = True
        self._wake.set()

    def stop(self) -> None:
        """Stay offline until :meth:`wake` with ``resume``."""
        self.want_online = False
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        first = True
        while True:
            if not first or not self.want_online:
                delay = 0.0 if self.skip_backoff else self.backoff.delay(failures, self._rng)
                if not self.want_online or self.permanent:
                    delay = math.inf
                self._wake = anyio.Event()
                with anyio.move_on_after(delay):
                    await self._wake.wait()
                if not self.want_online or (self.permanent and not self.skip_backoff):
                    continue
            first = False
            self.skip_backoff = False
            self.attempts.append(time.monotonic())
            established = await self._attempt()
            failures = 0 if established else failures + 1
