"""What a client reports: its connection state, changes, presence join/leave events.

Change notification is a small publish/subscribe hub: every subscriber (one per
``changes()`` or ``events()`` iterator) has its own pending set or queue and its own
wake-up event, so a slow consumer never makes a fast one miss anything, and
changes that pile up between two reads are coalesced into one ``Change``.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal, Union

import anyio

__all__ = (
    "ConnectionState",
    "ChangeKind",
    "Change",
    "Join",
    "Leave",
    "PresenceEvent",
    "ChangeHub",
    "ChangeStream",
    "EventStream",
)

logger = logging.getLogger(__name__)


class ConnectionState(str, enum.Enum):
    """Where the client's link to the server stands.

    ``OFFLINE``: no connection (never connected yet, lost, or waiting out a backoff).
    ``CONNECTING``: opening the socket and exchanging state vectors.
    ``CONNECTED``: synced both ways and relaying live.
    ``CLOSED``: the client was closed; it will not connect again.
    """

    OFFLINE = "offline"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


#: ``local``: an edit made here; ``remote``: an update from the server;
#: ``presence``: awareness views changed (including a typing flag going stale);
#: ``connection``: the connection state or ``last_error`` changed;
#: ``saved``: the number of unconfirmed local edits changed (or an edit was refused);
#: ``recovered``: a refusal was recovered from (see ``client.recoveries``).
ChangeKind = Literal["local", "remote", "presence", "connection", "saved", "recovered"]


@dataclass(frozen=True, slots=True)
class Change:
    """Something changed since the subscriber's previous ``Change``.

    ``version`` grows by one per change the client noticed; ``kinds`` lists what
    changed (coalesced). Read the views for the new values.
    """

    version: int
    kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class Join:
    """A participant came online (its first client announced itself)."""

    participant_id: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Leave:
    """A participant went offline (its last client disappeared)."""

    participant_id: str
    name: str
    role: str


PresenceEvent = Union[Join, Leave]


class _ChangeSub:
    __slots__ = ("kinds", "wake")

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.wake = anyio.Event()


class _EventSub:
    __slots__ = ("queue", "wake", "dropped", "_limit")

    def __init__(self, limit: int) -> None:
        self.queue: deque[PresenceEvent] = deque()
        self.wake = anyio.Event()
        self.dropped = 0
        self._limit = limit

    def put(self, event: PresenceEvent) -> None:
        if len(self.queue) >= self._limit:
            self.queue.popleft()
            self.dropped += 1
            logger.warning("a presence event subscriber fell %d events behind", self.dropped)
        self.queue.append(event)
        self.wake.set()


class ChangeHub:
    """Fan-out of changes and presence events to any number of async iterators."""

    def __init__(self, event_limit: int = 10_000) -> None:
        self.version = 0
        self._changes: set[_ChangeSub] = set()
        self._events: set[_EventSub] = set()
        self._event_limit = event_limit
        self._any = anyio.Event()
        self.closed = False

    def notify(self, kind: ChangeKind) -> None:
        """Record a change; wakes every waiter. Safe to call from sync code."""
        self.version += 1
        for sub in self._changes:
            sub.kinds.add(kind)
            sub.wake.set()
        self._any.set()
        self._any = anyio.Event()

    def publish(self, event: PresenceEvent) -> None:
        for sub in self._events:
            sub.put(event)

    def close(self) -> None:
        """End every iterator (after it drained what it had)."""
        self.closed = True
        for sub in self._changes:
            sub.wake.set()
        for esub in self._events:
            esub.wake.set()
        self._any.set()

    async def wait_any(self) -> None:
        """Return at the next change (or at close)."""
        if self.closed:
            return
        await self._any.wait()

    def changes(self) -> ChangeStream:
        """A new subscriber; it sees every change from this call on."""
        sub = _ChangeSub()
        self._changes.add(sub)
        return ChangeStream(self, sub)

    def events(self) -> EventStream:
        """A new subscriber; it sees every presence event from this call on."""
        sub = _EventSub(self._event_limit)
        self._events.add(sub)
        return EventStream(self, sub)

    def unsubscribe(self, sub: _ChangeSub | _EventSub) -> None:
        """Stop feeding a subscriber (its iterator ended or was closed)."""
        if isinstance(sub, _ChangeSub):
            self._changes.discard(sub)
        else:
            self._events.discard(sub)


class ChangeStream:
    """Async iterator of coalesced :class:`Change` values; subscribed when created.

    Use it in ``async for``; it ends when the client closes, or call :meth:`aclose`.
    """

    def __init__(self, hub: ChangeHub, sub: _ChangeSub) -> None:
        self._hub = hub
        self._sub = sub

    def __aiter__(self) -> ChangeStream:
        return self

    async def __anext__(self) -> Change:
        sub = self._sub
        while True:
            if sub.kinds:
                kinds, sub.kinds = frozenset(sub.kinds), set()
                return Change(self._hub.version, kinds)
            if self._hub.closed:
                self.aclose_sync()
                raise StopAsyncIteration
            await sub.wake.wait()
            sub.wake = anyio.Event()

    def aclose_sync(self) -> None:
        self._hub.unsubscribe(self._sub)

    async def aclose(self) -> None:
        self.aclose_sync()


class EventStream:
    """Async iterator of :class:`Join` / :class:`Leave`; subscribed when created."""

    def __init__(self, hub: ChangeHub, sub: _EventSub) -> None:
        self._hub = hub
        self._sub = sub

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> PresenceEvent:
        sub = self._sub
        while True:
            if sub.queue:
                return sub.queue.popleft()
            if self._hub.closed:
                self._hub.unsubscribe(sub)
                raise StopAsyncIteration
            await sub.wake.wait()
            sub.wake = anyio.Event()

    def pending(self) -> list[PresenceEvent]:
        """Events received and not yet iterated (without waiting)."""
        return list(self._sub.queue)

    async def aclose(self) -> None:
        self._hub.unsubscribe(self._sub)
