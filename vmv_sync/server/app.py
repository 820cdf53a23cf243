"""The ASGI application: HTTP endpoints and the WebSocket endpoint of the contract.

Starlette objects stop here: rooms only see a :class:`Connection` with a send
function. Every rule about a frame (size, rate, parse, apply) raises a
:class:`~vmv_sync.errors.CloseError`, and this module is the one place that turns
it into a close frame.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Literal, cast

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..config import Settings
from ..errors import (
    CloseError,
    GoingAway,
    MalformedMessage,
    ServerError,
    TooManyMessages,
    Unauthenticated,
    VmvSyncError,
)
from ..storage import SQLiteStore, Store
from .api import api_routes, authorize, error_response
from .auth import AccessRegistry, TokenIssuer, load_secret
from .connection import Connection, Principal
from .httplimits import http_middleware
from .containers import ensure_for
from .limits import RateLimiter, check_size
from .manager import RoomManager
from .metrics import Metrics
from .ops import ops_routes, state_at
from .rooms import Room
from .web import web_routes

__all__ = ("create_app", "WORKSHOP_ID_RE")

logger = logging.getLogger(__name__)

WORKSHOP_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def create_app(settings: Settings | None = None, store: Store | None = None) -> Starlette:
    """Build the server app. ``store`` defaults to :class:`SQLiteStore` at ``settings.db``.

    The app is used as any ASGI app; its lifespan opens the store and the rooms.
    ``app.state.manager`` is the :class:`RoomManager` once started, and
    ``app.state.started`` an event set when the app accepts connections.
    """
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            the_store = store
            if the_store is None:
                synchronous: Literal["FULL", "NORMAL"] = "NORMAL" if settings.synchronous == "normal" else "FULL"
                the_store = await stack.enter_async_context(SQLiteStore(settings.db, synchronous=synchronous))
            manager = await stack.enter_async_context(RoomManager(app.state.metrics.instrument(the_store), settings))
            app.state.tokens = TokenIssuer(load_secret(settings.secret, settings.data_dir))
            app.state.registry = AccessRegistry(settings.db)
            app.state.manager = manager
            app.state.store = the_store
            app.state.started.set()
            yield
        logger.info("server stopped; every pending write is flushed")

    async def healthz(request: Request) -> Response:
        manager: RoomManager = request.app.state.manager
        healthy, why = manager.health()
        return JSONResponse(
            {
                "status": "ok" if healthy else "unhealthy",
                "reason": why,
                "rooms": len(manager.rooms),
                "connections": sum(len(r.connections) for r in manager.rooms.values()),
            },
            status_code=200 if healthy else 503,
        )

    async def state(request: Request) -> Response:
        workshop_id = request.path_params["workshop_id"]
        if not WORKSHOP_ID_RE.fullmatch(workshop_id):
            return _bad_workshop_id()
        try:
            await authorize(request, workshop_id)
        except CloseError as exc:
            return error_response(exc)
        if "at" in request.query_params:  # a history view (vmv_sync.server.ops)
            return await state_at(request, workshop_id, request.query_params["at"])
        manager: RoomManager = request.app.state.manager
        try:
            room = await manager.acquire(workshop_id)
        except VmvSyncError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        try:
            body = room.derived.state.to_json()
        finally:
            manager.release(room)
        return JSONResponse(body)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/workshops/{workshop_id}/state", state),
            WebSocketRoute("/workshops/{workshop_id}", WorkshopSocket(settings)),
            *api_routes(),
            *ops_routes(),
            *web_routes(),
        ],
        lifespan=lifespan,
        middleware=http_middleware(settings),
    )
    app.state.started = anyio.Event()
    app.state.settings = settings
    app.state.metrics = Metrics()
    return app


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
        if not WORKSHOP_ID_RE.fullmatch(workshop_id):
            await websocket.send_denial_response(_bad_workshop_id())
            return
        if not origin_allowed(websocket, settings):
            await websocket.send_denial_response(
                PlainTextResponse("this Origin may not open workshops on this server", status_code=403)
            )
            return
        await websocket.accept()
        channel = _Channel(websocket, receive, send)
        try:
            principal = await _authenticate(websocket, workshop_id, settings)
        except CloseError as exc:
            logger.info("workshop=%s refused at connect code=%d reason=%s", workshop_id, exc.code, exc.reason)
            websocket.app.state.metrics.refused(exc.code)
            await channel.close(exc)
            return
        await _serve_socket(channel, workshop_id, settings, principal)


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


def _bad_workshop_id() -> Response:
    return PlainTextResponse(
        "invalid workshop id: use 1 to 64 characters of A-Z a-z 0-9 _ -", status_code=400
    )


def origin_allowed(websocket: WebSocket, settings: Settings) -> bool:
    """Cross-site WebSocket hijacking check: a browser's Origin must be ours or allowed.

    Clients that send no Origin (Python, Node) are judged by their token alone.
    """
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    if origin in settings.allowed_origins or "*" in settings.allowed_origins:
        return True
    host = websocket.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def _authenticate(websocket: WebSocket, workshop_id: str, settings: Settings) -> Principal:
    if not settings.auth:
        return Principal(None)
    app = websocket.app
    principal: Principal = app.state.tokens.verify(websocket.query_params.get("token"), workshop_id)
    await app.state.registry.load_revoked(workshop_id)
    if app.state.registry.is_revoked(workshop_id, principal.participant_id):
        raise Unauthenticated("this participant was removed from the workshop")
    return principal


async def _serve_socket(channel: _Channel, workshop_id: str, settings: Settings, principal: Principal) -> None:
    state = channel.websocket.app.state
    manager: RoomManager = state.manager
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
        on_sent=state.metrics.sent_many,
    )
    pid = principal.participant_id
    try:
        if len(room.connections) >= settings.max_connections_per_workshop:
            logger.warning("workshop=%s connection limit %d reached", workshop_id, settings.max_connections_per_workshop)
            conn.fail(TooManyMessages("this workshop has reached its connection limit"))
        elif pid is not None and sum(
            1 for c in room.connections.values() if c.principal.participant_id == pid
        ) >= settings.max_connections_per_participant:
            conn.fail(TooManyMessages("you have too many connections open to this workshop; close some"))
        elif room.closing:
            conn.fail(GoingAway("the server is shutting down"))
        else:
            if principal.authenticated and principal.role != "observer" and pid is not None:
                await _ensure_containers(room, pid)
            logger.info("workshop=%s conn=%d open participant=%s", workshop_id, conn.id, principal.participant_id)
            state.metrics.opened()
            room.add(conn)
            async with anyio.create_task_group() as tg:
                conn.attach(tg.cancel_scope)
                tg.start_soon(_write, conn)
                await _read(channel, conn, room, settings)
                tg.cancel_scope.cancel()
    finally:
        room.remove(conn)
        manager.release(room)
    code = conn.close_error.code if conn.close_error else 1000
    logger.info("workshop=%s conn=%d close participant=%s code=%d", workshop_id, conn.id, principal.participant_id, code)
    state.metrics.closed(conn.close_error)
    if conn.close_error is not None:
        await channel.close(conn.close_error)


async def _ensure_containers(room: Room, pid: str) -> None:
    """Create the participant's containers if a token arrives before they exist (server only)."""
    from ..schema import bind_roots, participant_entries_missing

    if participant_entries_missing(bind_roots(room.doc), pid):
        await room.edit(ensure_for(pid), reason="containers")


async def _write(conn: Connection) -> None:
    """Run the writer; a failed send means the peer is gone, and only writing stops.

    Reading goes on until the disconnect: frames the peer sent just before closing
    (its last edits) are still in the receive queue and must reach the room.
    """
    try:
        await conn.run_writer()
    except Exception as exc:
        logger.debug("workshop=%s conn=%d send failed: %r", conn.workshop_id, conn.id, exc)


async def _read(channel: _Channel, conn: Connection, room: Room, settings: Settings) -> None:
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
    limit = settings.max_message_size
    state = channel.websocket.app.state
    registry: AccessRegistry = state.registry
    metrics: Metrics = state.metrics
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
            if registry.is_revoked(conn.workshop_id, pid):
                raise Unauthenticated("you were removed from this workshop")
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
