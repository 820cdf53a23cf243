"""The WebSocket endpoint: one socket's life, from the upgrade to the close, top to bottom.

upgrade checks (workshop id, Origin) -> accept -> authenticate (token, revocation)
-> acquire the room -> admission caps (per workshop, per participant) -> the
participant's containers -> join the room -> read frames (size, rate, revocation,
``room.receive``) while the connection's writer drains its queue and its token's
expiry is watched -> leave -> close with the code of whatever ended it.

A token refresh (extension type 101, token_refresh.py) is handled here, in the
process holding the socket, and never reaches the room: in a cluster it is not
forwarded to the workshop's owner.

The room sees only a :class:`~vmv_sync.server.connection.Connection` (a channel with
``send``/``send_nowait``) and three calls: ``add``, ``receive``, ``remove``. Every
rule about a frame raises a :class:`~vmv_sync.errors.CloseError`, and this module is
the one place that turns it into a close frame; anything else a frame triggers is
logged once and closes that connection with 4400.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any, cast

import anyio
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..config import Settings
from ..errors import (
    CloseError,
    Forbidden,
    GoingAway,
    MalformedMessage,
    ServerError,
    TooManyMessages,
    Unauthenticated,
    VmvSyncError,
)
from ..ids import is_workshop_id
from ..schema import bind_roots, participant_entries_missing
from .auth import Principal
from .connection import Connection
from .containers import ensure_for
from .context import ServerContext, server_context
from .httperrors import bad_workshop_id, error_response
from .limits import check_size
from .originpolicy import origin_allowed
from .rooms import Room
from .token_refresh import is_token_refresh, refresh_token, watch_expiry

__all__ = ("WorkshopSocket",)

logger = logging.getLogger(__name__)


class WorkshopSocket:
    """The WebSocket endpoint, as a raw ASGI app rather than a Starlette endpoint.

    Starlette's :class:`WebSocket` does the handshake and the close; frames are read
    and written on the raw ASGI channels, which skips two wrappers and their checks
    on every frame (the hottest path of the server).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.settings
        websocket = WebSocket(scope, receive, send)
        workshop_id = websocket.path_params["workshop_id"]
        if not is_workshop_id(workshop_id):
            await websocket.send_denial_response(bad_workshop_id())
            return
        if not origin_allowed(websocket.headers, settings):
            await websocket.send_denial_response(
                error_response(Forbidden("this Origin may not open workshops on this server"))
            )
            return
        await websocket.accept()
        channel = _Channel(websocket, receive, send)
        try:
            context = server_context(websocket)
            principal = await _authenticate(context, websocket, workshop_id)
        except CloseError as exc:
            logger.info("workshop=%s refused at connect code=%d reason=%s", workshop_id, exc.code, exc.reason)
            with contextlib.suppress(ServerError):
                server_context(websocket).metrics.refused(exc.code)
            await channel.close(exc)
            return
        await _serve_socket(context, channel, workshop_id, principal)


class _Channel:
    """One accepted WebSocket: Starlette's object for its metadata, raw ASGI for frames."""

    def __init__(self, websocket: WebSocket, receive: Receive, send: Send) -> None:
        self.websocket = websocket
        self.receive = receive
        self._send = send

    async def send(self, frame: bytes) -> None:
        await self._send({"type": "websocket.send", "bytes": frame})

    def send_nowait(self, frame: bytes) -> bool:
        """Run the ASGI send to completion now if it does not need to wait.

        uvicorn's websockets-sansio ``send`` (pinned in pyproject.toml) only ever
        waits before it writes, while the transport is paused (the peer reads too
        slowly); otherwise it writes the frame and returns without suspending. So a
        send that suspends has written nothing: it is closed and False returned, and
        the frame goes through the connection's queue and writer task instead.
        tests/test_server.py checks both halves of this against the real server.
        """
        coro = cast(Coroutine[Any, Any, None], self._send({"type": "websocket.send", "bytes": frame}))
        try:
            coro.send(None)
        except StopIteration:
            return True
        coro.close()
        return False

    async def close(self, error: CloseError) -> None:
        """Send the close frame, reading (and dropping) what the peer still sends meanwhile.

        A peer that flooded us may still have frames in flight; reading them until
        the disconnect (2 s at most) lets the server see the peer's close reply and
        complete the closing handshake instead of leaving the peer waiting.
        """

        async def drain() -> None:
            with contextlib.suppress(Exception):
                while (await self.receive())["type"] != "websocket.disconnect":
                    pass

        with anyio.move_on_after(2.0):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                with contextlib.suppress(Exception):
                    await self._send({"type": "websocket.close", "code": error.code, "reason": error.reason[:120]})
                # drain() ends when the peer's close reply (or the disconnect) comes in


async def _authenticate(context: ServerContext, websocket: WebSocket, workshop_id: str) -> Principal:
    if not context.settings.auth:
        return Principal(None)
    return await context.registry.authenticate(context.tokens, websocket.query_params.get("token"), workshop_id)


async def _serve_socket(context: ServerContext, channel: _Channel, workshop_id: str, principal: Principal) -> None:
    settings, manager, metrics = context.settings, context.manager, context.metrics
    try:
        room = await manager.acquire(workshop_id)
    except VmvSyncError as exc:
        await channel.close(ServerError(f"could not open the workshop: {exc}"))
        return
    conn = Connection(
        workshop_id,
        channel,
        principal=principal,
        queue_size=settings.send_queue_size,
        queue_bytes=settings.send_queue_bytes,
        wants_saved=channel.websocket.query_params.get("saved") in {"1", "true"},
        on_sent=metrics.sent_many,
    )
    pid = principal.participant_id
    conn.budget = manager.budgets.get(workshop_id, pid)
    # participants and observers leave the last few connections to the facilitator,
    # so that nobody's connections can shut them out of their own workshop
    cap = settings.max_connections_per_workshop
    if principal.role != "facilitator":
        cap = max(1, cap - settings.facilitator_connection_reserve)
    try:
        if len(room.connections) >= cap:
            logger.warning("workshop=%s connection limit %d reached", workshop_id, cap)
            conn.fail(TooManyMessages("this workshop has reached its connection limit"))
        elif pid is not None and sum(
            1 for c in room.connections.values() if c.principal.participant_id == pid
        ) >= settings.max_connections_per_participant:
            conn.fail(TooManyMessages("you have too many connections open to this workshop; close some"))
        elif room.closing:
            conn.fail(GoingAway("the server is shutting down"))
        else:
            if principal.authenticated and principal.role != "observer" and pid is not None:
                await _ensure_containers(room, pid, conn)
            if conn.close_error is None:
                logger.info("workshop=%s conn=%d open participant=%s", workshop_id, conn.id, pid)
                metrics.opened()
                room.add(conn)
                async with anyio.create_task_group() as tg:
                    conn.attach(tg.cancel_scope)
                    tg.start_soon(_write, conn)
                    tg.start_soon(watch_expiry, conn)
                    await _read(context, channel, conn, room)
                    tg.cancel_scope.cancel()
    finally:
        room.remove(conn)
        manager.release(room)
    code = conn.close_error.code if conn.close_error else 1000
    logger.info("workshop=%s conn=%d close participant=%s code=%d", workshop_id, conn.id, principal.participant_id, code)
    metrics.closed(conn.close_error)
    if conn.close_error is not None:
        await channel.close(conn.close_error)


async def _ensure_containers(room: Room, pid: str, conn: Connection) -> None:
    """Create the participant's containers if a token arrives before they exist (server only)."""
    if participant_entries_missing(bind_roots(room.doc), pid):
        try:
            await room.edit(ensure_for(pid), reason="containers")
        except CloseError as exc:
            conn.fail(exc)


async def _write(conn: Connection) -> None:
    """Run the writer; a failed send means the peer is gone, and only writing stops.

    Reading goes on until the disconnect: frames the peer sent just before closing
    (its last edits) are still in the receive queue and must reach the room.
    """
    try:
        await conn.run_writer()
    except Exception as exc:
        logger.debug("workshop=%s conn=%d send failed: %r", conn.workshop_id, conn.id, exc)


async def _read(context: ServerContext, channel: _Channel, conn: Connection, room: Room) -> None:
    settings = context.settings
    # the participant's budgets (budgets.py): shared by their connections, kept across reconnects
    budget = conn.budget or context.manager.budgets.new()
    limiter, byte_limiter = budget.messages, budget.bytes
    limit = settings.max_message_size
    registry, metrics = context.registry, context.metrics
    receive = channel.receive
    pid = conn.principal.participant_id
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        frame = message.get("bytes")
        metrics.received(frame if frame is not None else message.get("text"))
        try:
            if frame is None:
                text = message.get("text") or ""
                check_size(text, limit)
                raise MalformedMessage("text frames are not part of the protocol; send binary")
            check_size(frame, limit)
            limiter.hit()
            byte_limiter.hit(len(frame), "bytes")
            if registry.is_revoked(conn.workshop_id, pid):
                raise Unauthenticated("you were removed from this workshop")
            if is_token_refresh(frame):
                conn.last_seen = time.monotonic()
                await refresh_token(context, conn, frame)
                continue
            await room.receive(conn, frame)
        except CloseError as exc:
            conn.fail(exc)
            return
        except Exception as exc:  # a bug met by this frame: it costs this connection only
            logger.warning(
                "workshop=%s conn=%d frame could not be handled (%s: %s); closing with 4400",
                conn.workshop_id, conn.id, type(exc).__name__, str(exc)[:200],
            )  # fmt: skip
            conn.fail(MalformedMessage("the message could not be handled"))
            return
