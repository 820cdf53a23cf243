"""Tokens on open connections: expiry closes them, an in-band refresh moves the expiry.

A token used to be checked only when a WebSocket opened. Now each authenticated
connection knows when its token stops being accepted (``Principal.expires_at``: the
``exp`` claim, plus the clock skew external tokens are allowed) and is closed then
with 4401, unless the client handed it a fresh token first with the extension
message 101 (docs/protocol.md, docs/auth.md):

- client -> server ``varuint 101, varstring token``: checked exactly as at connect
  (the same registry call: vmv-sync's HS256 or the application's keys, and the
  revocation list). It must name the same workshop, the same participant and the
  same role as the connection's token (anything else: 4403, so a connection never
  changes who it is or what it may write); an invalid or expired token: 4401.
- server -> client ``varuint 101, varuint exp`` once accepted.

A refusal's close reason starts with ``token refresh:``
(:data:`~vmv_sync.errors.TOKEN_REFRESH_PREFIX`): the connection's own token was
fine, so its client may reconnect with that one rather than give up.

Both live here, called by the endpoint (endpoint.py), which runs in the process
holding the socket: in a cluster the refresh is never forwarded to the workshop's
owner as a document frame, and the expiry is watched where the socket is. The owner
keeps the principal it was told at open, which a refresh does not change (the
display name stays the one the connection opened with, as awareness is checked
against it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time

import anyio

from ..errors import TOKEN_REFRESH_PREFIX, CloseError, Forbidden, MalformedMessage, TokenExpired
from ..protocol import MSG_TOKEN, TokenRefresh, encode_token_refreshed, parse_message
from .budgets import charged
from .connection import Connection
from .context import ServerContext

__all__ = ("is_token_refresh", "refresh_token", "watch_expiry")

logger = logging.getLogger(__name__)

#: every message type below 128 is a one-byte var-uint: a frame starts with its type
_REFRESH_PREFIX = bytes((MSG_TOKEN,))


def is_token_refresh(frame: bytes) -> bool:
    """Whether ``frame`` is a token refresh (type 101), judged by its first byte alone."""
    return frame[:1] == _REFRESH_PREFIX


async def watch_expiry(conn: Connection) -> None:
    """Close ``conn`` with 4401 once its token is no longer accepted; no-op with auth off.

    One sleep per deadline, run in the connection's own task group: a refresh moves
    ``conn.principal.expires_at`` and this wakes at the old deadline, sees the new
    one and sleeps again, so a refresh costs no wake-up of its own. The wall clock
    is read at every wake-up, as the ``exp`` it compares with is wall-clock time.
    """
    while True:
        expires_at = conn.principal.expires_at
        if expires_at is None:
            return
        left = expires_at - time.time()
        if left <= 0:
            conn.fail(TokenExpired("the token has expired; refresh it or join again"))
            return
        await anyio.sleep(left)


async def refresh_token(context: ServerContext, conn: Connection, frame: bytes) -> None:
    """Check the token a 101 frame carries and, if it fits, keep the connection on it.

    Raises MalformedMessage (4400) for a frame that is not ``101, varstring``,
    Unauthenticated (4401) for a token the connect check refuses, Forbidden (4403)
    for a token of another workshop, participant or role. With authentication off
    nothing is checked and the answer carries exp 0 (the server checks no tokens).
    """
    message = parse_message(frame)
    if not isinstance(message, TokenRefresh):  # is_token_refresh said 101: cannot happen
        raise MalformedMessage("not a token refresh")
    if not context.settings.auth:
        conn.enqueue(encode_token_refreshed(0))
        return
    current = conn.principal
    # the signature check is the sender's work, like any input's (budgets.py; 4429 when spent)
    with charged(conn.budget) if conn.budget is not None else contextlib.nullcontext():
        try:
            fresh = await context.registry.authenticate(context.tokens, message.token, conn.workshop_id)
        except CloseError as exc:  # 4401 invalid, expired or revoked; 4403 another workshop
            exc.reason = f"{TOKEN_REFRESH_PREFIX} {exc.reason}"
            raise
    if fresh.participant_id != current.participant_id:
        raise Forbidden(f"{TOKEN_REFRESH_PREFIX} the token names another participant; connect with it instead")
    if fresh.role != current.role:
        raise Forbidden(f"{TOKEN_REFRESH_PREFIX} the token gives another role; connect with it instead")
    if fresh.exp is None or fresh.expires_at is None:  # every verifier requires exp
        raise Forbidden(f"{TOKEN_REFRESH_PREFIX} the token has no expiry")
    conn.principal = dataclasses.replace(current, exp=fresh.exp, expires_at=fresh.expires_at)
    logger.info(
        "workshop=%s conn=%d token refreshed participant=%s exp=%d",
        conn.workshop_id, conn.id, current.participant_id, fresh.exp,
    )  # fmt: skip
    conn.enqueue(encode_token_refreshed(fresh.exp))
