"""The chat's hybrid logical clock: the ``hlc`` a new message carries.

A message's clock is the wall clock in ms, or one more than the largest clock among
the messages its writer holds, whichever is larger, so it sorts after everything its
writer saw (vmv_sync.derived.chat; docs/client.md, "Chat order"). What a clock is
when read back (``hlc``, else ``sent_at``) is :func:`~vmv_sync.schema.parse.parse_clock`'s
and ``ChatMessage.clock``'s.
"""

from __future__ import annotations

import math
from typing import Any

from pycrdt import Map

from vmv_sync.schema.parse import MAX_CLOCK, as_float, parse_clock

__all__ = ("MAX_AHEAD_MS", "next_clock")

#: a clock more than a day ahead of the writer's own is not followed: one wrong or
#: hostile clock would otherwise drag every later message's clock along with it (its
#: own message still sorts by it; docs/client.md, "Chat order")
MAX_AHEAD_MS = 24 * 3600 * 1000


def next_clock(messages: Any, sent_at: float) -> int:
    """The ``hlc`` of a message written at ``sent_at`` after ``messages`` (a hybrid logical clock).

    ``max(wall clock, largest clock followed + 1)``, in ms; a message's clock is its
    ``hlc``, else ``floor(sent_at * 1000)`` (``ChatMessage.clock``). Reads only those two
    fields of each message (about 15 us each), not the whole record.
    """
    own = math.floor(sent_at * 1000)
    latest = -1
    for item in messages:
        if not isinstance(item, Map):
            continue
        clock = parse_clock(item.get("hlc"))
        if clock is None:
            seconds = as_float(item.get("sent_at"))
            clock = None if seconds is None else min(max(math.floor(seconds * 1000), 0), MAX_CLOCK)
        if clock is not None and latest < clock <= own + MAX_AHEAD_MS:
            latest = clock
    return min(max(own, latest + 1), MAX_CLOCK)
