"""The y-websocket wire protocol: frames parsed to typed messages and encoded back."""

from __future__ import annotations

from .awareness_update import AwarenessEntry, decode_awareness_update, encode_awareness_update, merge_awareness_payloads
from .messages import (
    MSG_AWARENESS,
    MSG_QUERY_AWARENESS,
    MSG_SAVED,
    MSG_SYNC,
    SYNC_STEP1,
    SYNC_STEP2,
    SYNC_UPDATE,
    Awareness,
    Message,
    QueryAwareness,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    encode_awareness,
    encode_query_awareness,
    encode_saved,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    parse_message,
)
from .update import EMPTY_UPDATE
from .varint import decode_state_vector

__all__ = (
    "EMPTY_UPDATE",
    "MSG_SYNC",
    "MSG_AWARENESS",
    "MSG_QUERY_AWARENESS",
    "MSG_SAVED",
    "SYNC_STEP1",
    "SYNC_STEP2",
    "SYNC_UPDATE",
    "Message",
    "SyncStep1",
    "SyncStep2",
    "SyncUpdate",
    "Awareness",
    "QueryAwareness",
    "Saved",
    "parse_message",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_sync_update",
    "encode_awareness",
    "encode_query_awareness",
    "encode_saved",
    "AwarenessEntry",
    "decode_awareness_update",
    "encode_awareness_update",
    "decode_state_vector",
    "merge_awareness_payloads",
)
