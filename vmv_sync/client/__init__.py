"""The offline-first Python client: a local replica of one workshop, synced when possible.

Example:
    >>> async with WorkshopClient("ws://127.0.0.1:8000", "w1", store_path="me.sqlite3",
    ...                           participant_id="p1", name="Ann") as c:  # doctest: +SKIP
    ...     await c.post_message("hello")

See docs/client.md for the guide.
"""

from __future__ import annotations

from .backoff import PERMANENT_CLOSE_CODES, Backoff, is_permanent_close
from .channel import Channel, ChannelFactory, ChannelRefused, memory_channel_pair
from .client import WorkshopClient
from .events import (
    Change,
    ChangeKind,
    ChangeStream,
    ConnectionState,
    EventStream,
    Join,
    Leave,
    PresenceEvent,
)
from .identity import workshop_url
from .recovery import Refused
from .replica import OUTBOX_SUFFIX, PENDING_SUFFIX, LocalReplica
from .websocket import websocket_channels

__all__ = (
    "WorkshopClient",
    "workshop_url",
    "ConnectionState",
    "Backoff",
    "PERMANENT_CLOSE_CODES",
    "is_permanent_close",
    "Change",
    "ChangeKind",
    "ChangeStream",
    "EventStream",
    "Join",
    "Leave",
    "PresenceEvent",
    "LocalReplica",
    "OUTBOX_SUFFIX",
    "PENDING_SUFFIX",
    "Refused",
    "Channel",
    "ChannelFactory",
    "ChannelRefused",
    "memory_channel_pair",
    "websocket_channels",
)
