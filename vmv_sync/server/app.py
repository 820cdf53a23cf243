"""The ASGI application: the lifespan that opens the store and the rooms, and the routes.

The WebSocket endpoint lives in :mod:`vmv_sync.server.endpoint`; HTTP API, ops and
page routes in their own modules. Starlette objects stop at those modules: rooms only
see a :class:`~vmv_sync.server.connection.Connection`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from ..config import Settings
from ..errors import ConfigError
from ..ids import WORKSHOP_ID_RE
from ..storage import Directory, Store, open_store, token_secret
from .api import api_routes
from .auth import AccessRegistry
from .context import ServerContext, server_context
from .endpoint import WorkshopSocket
from .external_auth import ExternalTokens
from .httpguard import http_middleware
from .logs import AccessLog
from .manager import RoomManager
from .metrics import Metrics
from .openapi import openapi_routes
from .ops import ops_routes
from .secret import load_secret
from .stateviews import state_routes
from .tokens import TokenIssuer
from .web import web_routes
from .webhooks import Webhooks, WebhookTaps

__all__ = ("create_app", "WORKSHOP_ID_RE")

logger = logging.getLogger(__name__)


async def _cluster(stack: contextlib.AsyncExitStack, settings: Settings, store: Store) -> Any:
    """With ``redis_url``, this process is a node of a cluster (server/cluster/, docs/scaling.md).

    Entered before the room manager, so it stops after every room has released its lease.
    """
    if not settings.redis_url:
        return None
    from .cluster import Cluster  # imported only here: one process never loads Redis

    if not hasattr(store, "claim_epoch"):
        raise ConfigError("several processes need a store with fencing epochs (postgresql://...)")
    return await stack.enter_async_context(Cluster(settings, store))  # type: ignore[arg-type]


def create_app(settings: Settings | None = None, store: Store | None = None) -> Starlette:
    """Build the server app. ``store`` defaults to ``open_store(settings.db)`` (SQLite).

    The app is used as any ASGI app; its lifespan opens the store and the rooms and
    publishes them as one :class:`~vmv_sync.server.context.ServerContext`
    (``server_context(app)``); ``app.state.started`` is set when the app accepts
    connections.
    """
    settings = settings or Settings()
    webhooks = Webhooks.from_settings(settings)  # events to the embedding app (webhooks.py)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            the_store = store
            if the_store is None:
                the_store = open_store(settings.db, synchronous="NORMAL" if settings.synchronous == "normal" else "FULL")
                await stack.enter_async_context(the_store)
            metrics: Metrics = app.state.metrics
            # invites, revocations and the generated secret live in the store (one for
            # every process on it); the secret is mirrored beside an SQLite file (contract 6)
            directory = the_store if isinstance(the_store, Directory) else None
            folder = settings.data_dir or (p.parent if (p := settings.sqlite_path) else None)
            secret = settings.secret or (
                await token_secret(directory, folder) if directory else load_secret(None, settings.data_path)
            )
            cluster = await _cluster(stack, settings, the_store)  # None: one process (the default)
            manager = await stack.enter_async_context(
                RoomManager(
                    the_store, settings, cluster=cluster, metrics=metrics,
                    on_commit=webhooks.notify if webhooks else None,
                )
            )
            context = ServerContext(
                settings=settings,
                store=the_store,
                manager=manager,
                tokens=TokenIssuer(
                    secret, external=ExternalTokens.from_settings(settings)
                ),
                registry=AccessRegistry(directory or settings.db),
                metrics=metrics,
            )
            app.state.context = context
            if cluster is not None:
                cluster.attach(manager, context.registry)
            if webhooks is not None:
                await stack.enter_async_context(webhooks.running(manager, context.registry, the_store))
            app.state.started.set()
            yield
            app.state.context = None
        logger.info("server stopped; every pending write is flushed")

    async def healthz(request: Request) -> Response:
        manager = server_context(request).manager
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

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            *state_routes(),
            WebSocketRoute("/workshops/{workshop_id}", WorkshopSocket(settings)),
            *api_routes(),
            *ops_routes(),
            *openapi_routes(),
            *web_routes(),
        ],
        lifespan=lifespan,
        # the access log outermost, so it sees the status of every refusal (logs.py)
        middleware=[Middleware(AccessLog), Middleware(WebhookTaps), *http_middleware(settings)],
    )
    app.state.started = anyio.Event()
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.webhooks = webhooks
    return app
