"""``GET /metrics``: the server's Prometheus metrics (metrics.py) as text, for a scraper."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import ServerError
from .context import server_context
from .metrics import Metrics

__all__ = ("metrics_routes",)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text format (unauthenticated, like /healthz)."""
    registry: Metrics = request.app.state.metrics  # made with the app: counts from the first request
    try:
        context = server_context(request)
    except ServerError:  # before start-up or after shutdown: no rooms, no store
        body = registry.render(rooms=0, connections=0, store=None)
    else:
        rooms = context.manager.rooms
        connections = sum(len(room.connections) for room in rooms.values())
        body = registry.render(rooms=len(rooms), connections=connections, store=context.store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_routes() -> list[BaseRoute]:
    return [Route("/metrics", metrics, methods=["GET"])]
