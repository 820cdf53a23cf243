"""Budgets per participant: what one person may take of a workshop and of the server.

Limits per connection let a participant multiply them (16 sockets, a fresh burst on
every reconnect); limits per workshop let one participant use up what the others
need. So every rate that protects others is charged to the *participant* (per
workshop, or per connection when authentication is off, where nobody is known):

- ``messages`` and ``bytes``: what they send, in frames and bytes per second;
- ``work``: seconds of the event loop their input costs (integrating their updates,
  checking them, rebuilding the guard's shadow after a refusal, answering their
  sync requests). It is charged after the fact, measured, and may run negative:
  further input is refused (4429) until it has refilled, so one participant's
  expensive input stalls everyone at most once per refill, never continuously;
- ``written``: bytes of their updates stored in the workshop, for the quota's share.

Budgets live in the manager's :class:`Budgets`, outliving connections and rooms:
reconnecting or waiting for an idle unload gives nothing back. They are kept in
memory (a restart starts them afresh) and bounded in number (least recently used
go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..config import Settings
from ..errors import TooManyMessages
from .limits import RateLimiter
from .tokenbucket import TokenBucket

__all__ = ("Budget", "Budgets", "charged")


class WorkMeter:
    """A budget of event-loop seconds: ``rate`` seconds per second, ``burst`` at most.

    Charged with what an input actually cost; :meth:`check` refuses input while the
    balance is negative.
    """

    __slots__ = ("_bucket", "_clock")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock())

    @property
    def balance(self) -> float:
        return self._bucket.refill(self._clock())

    def charge(self, seconds: float) -> None:
        self._bucket.charge(self._clock(), seconds)

    def check(self) -> None:
        balance = self.balance
        if balance < 0:
            rate = self._bucket.rate
            wait = -balance / rate if rate > 0 else float("inf")
            raise TooManyMessages(
                f"your edits cost more than your share of the server's time; wait {wait:.0f} s and reconnect"
            )


@dataclass(slots=True)
class Budget:
    """One participant's budgets in one workshop (or one anonymous connection's)."""

    messages: RateLimiter
    bytes: RateLimiter
    work: WorkMeter
    #: bytes of this participant's accepted updates (the quota's share)
    written: int = 0


class Budgets:
    """Every participant's :class:`Budget`, by (workshop, participant), bounded in number."""

    def __init__(self, settings: Settings, *, max_keys: int = 100_000) -> None:
        self.settings = settings
        self.max_keys = max_keys
        self._budgets: OrderedDict[tuple[str, str], Budget] = OrderedDict()

    def __len__(self) -> int:
        return len(self._budgets)

    def new(self) -> Budget:
        """A fresh budget (an anonymous connection's, or a participant's first)."""
        s = self.settings
        return Budget(
            messages=RateLimiter(s.rate_limit, s.rate_burst),
            bytes=RateLimiter(s.rate_bytes, max(s.rate_bytes_burst, s.max_message_size)),
            work=WorkMeter(s.work_share, s.work_burst),
        )

    def get(self, workshop_id: str, participant_id: str | None) -> Budget:
        """The participant's budget; a fresh one per call for ``None`` (auth off)."""
        if participant_id is None:
            return self.new()
        key = (workshop_id, participant_id)
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = self.new()
            if len(self._budgets) > self.max_keys:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(key)
        return budget

    def forget(self, workshop_id: str, participant_id: str) -> None:
        """Drop a removed participant's budget (what they held is given back)."""
        self._budgets.pop((workshop_id, participant_id), None)


@contextmanager
def charged(budget: Budget) -> Iterator[None]:
    """Run a read whose cost grows with the document (an export, a report, the chat of
    ``/state``) on ``budget``: refused (429) while the budget is spent, charged after.

    The reads run mostly in a worker thread, but pycrdt holds the GIL while it works,
    so a reader asking again and again would still take the loop from everyone else.
    """
    budget.work.check()
    started = time.perf_counter()
    try:
        yield
    finally:
        budget.work.charge(time.perf_counter() - started)
