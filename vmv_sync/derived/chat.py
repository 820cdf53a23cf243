"""The chat's display order: one rule, the same on every replica and in every export.

The ``messages`` array is append-only and its order is Yjs merge order: concurrent
appends (an outage, two offline writers) are ordered by client id, not by when they
were written. So nothing shows the array order; everything shows
:func:`ordered_messages`, which sorts by a **hybrid logical clock** carried in each
message (``hlc``, integer milliseconds, an optional contract v1 extension,
docs/client.md "Chat order"):

- the writer sets ``hlc = max(its wall clock in ms, the largest clock of any message
  in its replica + 1)`` (``schema.actions.post_message`` and the page's
  ``postMessage``), so a message always sorts after every message its writer could
  see, whatever the writer's clock says: a device whose clock is hours behind does not
  bury its reply above the question, and one hours ahead is followed, not preceded,
  by the replies to it;
- where the writers' clocks agree, ``hlc`` is the wall clock, so the order is the
  order of writing, and a message that arrives late (written offline) slots in where
  it was written;
- a message without ``hlc`` (a contract v1 writer) counts with ``floor(sent_at * 1000)``
  (:attr:`ChatMessage.clock <vmv_sync.schema.ChatMessage.clock>`);
- ties are broken by author, then id, compared by code point (ids are unique, so the
  order is total).

The web page and the browser client package apply the identical rule
(``web/client/src/chat.js``); tests/webclient checks that both give the same order.

Example:
    >>> from vmv_sync.schema import ChatMessage
    >>> late = ChatMessage(id="b", author="ann", text="2", sent_at=10.0, stage="vision", hlc=12_000)
    >>> early = ChatMessage(id="a", author="bob", text="1", sent_at=11.0, stage="vision")
    >>> [m.text for m in ordered_messages([late, early])]
    ['1', '2']
"""

from __future__ import annotations

from collections.abc import Iterable

from vmv_sync.schema.records import ChatMessage

__all__ = ("HLC_FIELD", "order_key", "ordered_messages")

#: the message field that carries the writer's hybrid logical clock
HLC_FIELD = "hlc"


def order_key(message: ChatMessage) -> tuple[int, str, str]:
    """``(clock, author, id)``: the display order's sort key."""
    return (message.clock, message.author, message.id)


def ordered_messages(messages: Iterable[ChatMessage]) -> tuple[ChatMessage, ...]:
    """The messages in display order (pure: the same messages give the same order everywhere)."""
    return tuple(sorted(messages, key=order_key))
