"""An incrementally maintained chat log: the ``messages`` view without re-reading.

Reading thousands of messages out of a pycrdt Array costs about 0.1 ms each, so
a view that re-read the whole array after every update would block the event
loop for most of a second in a long workshop. This log applies each array
event's delta (retain / insert / delete) to a list of parsed entries instead, and
falls back to a full re-read only when an existing message is edited in place
(messages are append-only by contract, so that is rare).
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Subscription

from ..schema import ChatMessage
from ..schema.parse import parse_chat_message

__all__ = ("MessageLog",)


class MessageLog:
    """Parsed messages of a ``messages`` Array, kept current from its events.

    :attr:`messages` equals ``read_workshop(doc).messages``: array order, malformed
    entries skipped, a repeated id keeping its first message.
    """

    def __init__(self, array: Array[Any]) -> None:
        self._array = array
        self._items: list[ChatMessage | None] = []
        self._stale = True
        self._cache: tuple[ChatMessage, ...] | None = None
        self._subscription: Subscription | None = array.observe_deep(self._on_events)

    def _on_events(self, events: list[Any]) -> None:
        # Runs inside the committing transaction: record, never raise.
        self._cache = None
        if self._stale:
            return
        for event in events:
            delta = getattr(event, "delta", None)
            if getattr(event, "path", None) or delta is None:
                self._stale = True  # an edit inside a message: re-read once
                return
            index = 0
            for op in delta:
                if "retain" in op:
                    index += op["retain"]
                elif "delete" in op:
                    del self._items[index : index + op["delete"]]
                elif "insert" in op:
                    parsed = [parse_chat_message(item)[0] for item in op["insert"]]
                    self._items[index:index] = parsed
                    index += len(parsed)

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        if self._stale:
            with self._array.doc.transaction():
                self._items = [parse_chat_message(item)[0] for item in self._array]
            self._stale = False
            self._cache = None
        if self._cache is None:
            seen: set[str] = set()
            kept = []
            for message in self._items:
                if message is not None and message.id not in seen:
                    seen.add(message.id)
                    kept.append(message)
            self._cache = tuple(kept)
        return self._cache

    def close(self) -> None:
        if self._subscription is not None:
            self._array.unobserve(self._subscription)
            self._subscription = None
