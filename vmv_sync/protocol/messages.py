"""y-protocols frames as typed messages.

Message types on the wire (first var-uint of a frame): 0 sync (sub-types step 1,
step 2, update), 1 awareness, 3 query-awareness, as y-websocket speaks them, plus
one extension of ours: 100 ``saved``, sent only to clients that asked for it with
the ``saved=1`` query parameter (see docs/protocol.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..errors import MalformedMessage
from .varint import Reader, write_var_bytes, write_var_uint

__all__ = (
    "MSG_SYNC",
    "MSG_AWARENESS",
    "MSG_QUERY_AWARENESS",
    "MSG_SAVED",
    "SYNC_STEP1",
    "SYNC_STEP2",
    "SYNC_UPDATE",
    "SyncStep1",
    "SyncStep2",
    "SyncUpdate",
    "Awareness",
    "QueryAwareness",
    "Saved",
    "Message",
    "parse_message",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_sync_update",
    "encode_awareness",
    "encode_query_awareness",
    "encode_saved",
)

MSG_SYNC = 0
MSG_AWARENESS = 1
MSG_QUERY_AWARENESS = 3
#: vmv-sync extension: "your updates up to N are committed to disk".
MSG_SAVED = 100

#: sub-types of a sync message (the second var-uint of its frame)
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True, slots=True)
class Awareness:
    update: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


@dataclass(frozen=True, slots=True)
class Saved:
    """The server committed this connection's first ``count`` updates."""

    count: int


Message = Union[SyncStep1, SyncStep2, SyncUpdate, Awareness, QueryAwareness, Saved]


def parse_message(frame: bytes) -> Message:
    """Parse one binary frame; raise :class:`MalformedMessage` on anything else.

    Payloads are not decoded here: a sync step 1's state vector goes through
    :func:`~vmv_sync.protocol.decode_state_vector` (pycrdt raises a plain ValueError
    on one it cannot decode: ``00 00 01 05``, issue 14), an update through
    ``protocol.update.summarize_update``, awareness through ``decode_awareness_update``.
    """
    if not frame:
        raise MalformedMessage("empty message")
    reader = Reader(frame)
    kind = reader.read_var_uint()
    message: Message
    if kind == MSG_SYNC:
        sub = reader.read_var_uint()
        payload = reader.read_var_bytes()
        if sub == SYNC_STEP1:
            message = SyncStep1(payload)
        elif sub == SYNC_STEP2:
            message = SyncStep2(payload)
        elif sub == SYNC_UPDATE:
            message = SyncUpdate(payload)
        else:
            raise MalformedMessage(f"unknown sync message type {sub}")
    elif kind == MSG_AWARENESS:
        message = Awareness(reader.read_var_bytes())
    elif kind == MSG_QUERY_AWARENESS:
        message = QueryAwareness()
    elif kind == MSG_SAVED:
        message = Saved(reader.read_var_uint())
    else:
        raise MalformedMessage(f"unknown message type {kind}")
    if not reader.done:
        raise MalformedMessage("malformed message: trailing bytes after the payload")
    return message


_SYNC = write_var_uint(MSG_SYNC)


def encode_sync_step1(state_vector: bytes) -> bytes:
    return _SYNC + write_var_uint(SYNC_STEP1) + write_var_bytes(state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return _SYNC + write_var_uint(SYNC_STEP2) + write_var_bytes(update)


def encode_sync_update(update: bytes) -> bytes:
    return _SYNC + write_var_uint(SYNC_UPDATE) + write_var_bytes(update)


def encode_awareness(update: bytes) -> bytes:
    return write_var_uint(MSG_AWARENESS) + write_var_bytes(update)


def encode_query_awareness() -> bytes:
    return write_var_uint(MSG_QUERY_AWARENESS)


def encode_saved(count: int) -> bytes:
    return write_var_uint(MSG_SAVED) + write_var_uint(count)
