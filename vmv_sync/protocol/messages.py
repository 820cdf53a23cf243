"""y-protocols frames as typed messages.

Message types on the wire (first var-uint of a frame): 0 sync (sub-types step 1,
step 2, update), 1 awareness, 3 query-awareness, as y-websocket speaks them, plus
two extensions of ours (docs/protocol.md): 100 ``saved``, sent only to clients that
asked for it with the ``saved=1`` query parameter, and 101 ``token``, which a client
sends to hand its live connection a fresh token (``varstring token``) and the server
answers with the new expiry (``varuint exp``). Stock providers send neither.

Type 101 has one payload per direction, so :func:`parse_message` reads a frame as
the server reads it (a :class:`TokenRefresh`) unless told it came from the server
(``from_server=True``: a :class:`TokenRefreshed`), which is what the client does.
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
    "MSG_TOKEN",
    "SYNC_STEP1",
    "SYNC_STEP2",
    "SYNC_UPDATE",
    "SyncStep1",
    "SyncStep2",
    "SyncUpdate",
    "Awareness",
    "QueryAwareness",
    "Saved",
    "TokenRefresh",
    "TokenRefreshed",
    "Message",
    "parse_message",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_sync_update",
    "encode_awareness",
    "encode_query_awareness",
    "encode_saved",
    "encode_token_refresh",
    "encode_token_refreshed",
)

MSG_SYNC = 0
MSG_AWARENESS = 1
MSG_QUERY_AWARENESS = 3
#: vmv-sync extension: "your updates up to N are committed to disk".
MSG_SAVED = 100
#: vmv-sync extension: client -> server "here is a fresh token", server -> client "accepted, exp"
MSG_TOKEN = 101

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


@dataclass(frozen=True, slots=True)
class TokenRefresh:
    """Client -> server: check this token and, if it names the same participant, keep it."""

    token: str

    def __repr__(self) -> str:  # a token is a credential: never in a log line or a traceback
        return f"TokenRefresh(<{len(self.token)} characters>)"


@dataclass(frozen=True, slots=True)
class TokenRefreshed:
    """Server -> client: the fresh token was accepted; the connection now lasts until ``exp``.

    ``exp`` is the token's ``exp`` claim (unix seconds), 0 when the server does not
    check tokens (``--no-auth``).
    """

    exp: int


Message = Union[SyncStep1, SyncStep2, SyncUpdate, Awareness, QueryAwareness, Saved, TokenRefresh, TokenRefreshed]


def parse_message(frame: bytes, *, from_server: bool = False) -> Message:
    """Parse one binary frame; raise :class:`MalformedMessage` on anything else.

    Payloads are not decoded here: a sync step 1's state vector goes through
    :func:`~vmv_sync.protocol.decode_state_vector` (pycrdt raises a plain ValueError
    on one it cannot decode: ``00 00 01 05``, issue 14), an update through
    ``protocol.update.summarize_update``, awareness through ``decode_awareness_update``.
    ``from_server`` picks the server -> client form of the one type whose payload
    depends on the direction (101: a token one way, its expiry the other).
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
    elif kind == MSG_TOKEN:
        message = TokenRefreshed(reader.read_var_uint()) if from_server else TokenRefresh(reader.read_var_string())
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


def encode_token_refresh(token: str) -> bytes:
    """Client -> server: ``varuint 101, varstring token``."""
    return write_var_uint(MSG_TOKEN) + write_var_bytes(token.encode("utf-8"))


def encode_token_refreshed(exp: int) -> bytes:
    """Server -> client: ``varuint 101, varuint exp`` (0: the server checks no tokens)."""
    return write_var_uint(MSG_TOKEN) + write_var_uint(exp)
