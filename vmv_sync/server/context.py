"""The server's typed context: what every endpoint needs, made once by the app's lifespan.

Starlette's ``app.state`` is an untyped bag; endpoints reading slots from it with
``getattr`` fallbacks could not say what they depend on. The lifespan builds one
:class:`ServerContext` after the store and the rooms are open, and endpoints get it
with :func:`server_context`, which fails clearly before start-up or after shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import ServerError
from ..storage import Store
from .auth import AccessRegistry
from .manager import RoomManager
from .metrics import Metrics
from .rooms import Room
from .tokens import TokenIssuer

__all__ = ("ServerContext", "server_context")


@dataclass(frozen=True)
class ServerContext:
    """Everything the server's endpoints share, for one running app."""

    settings: Settings
    store: Store
    manager: RoomManager
    tokens: TokenIssuer
    registry: AccessRegistry
    metrics: Metrics

    @asynccontextmanager
    async def room(self, workshop_id: str) -> AsyncIterator[Room]:
        """The workshop's loaded room, held for the block and released after it.

        Raises what :meth:`RoomManager.acquire` raises (the workshop could not be loaded).
        """
        room = await self.manager.acquire(workshop_id)
        try:
            yield room
        finally:
            self.manager.release(room)


def server_context(app_or_request: Any) -> ServerContext:
    """The running app's context (from the app, a Request or a WebSocket).

    Raises:
        ServerError: the app is not started (or already stopped).
    """
    app = getattr(app_or_request, "app", app_or_request)
    context = getattr(app.state, "context", None)
    if not isinstance(context, ServerContext):
        raise ServerError("the server is not running")
    return context
