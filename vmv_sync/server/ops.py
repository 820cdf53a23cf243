"""The operations routes: the workshop's outcome (exports.py) and the server's metrics (scrape.py).

History helpers are :mod:`vmv_sync.history`; the views of ``/state`` (live, as of
a moment, the chat) are in stateviews.py.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from .exports import export_routes
from .scrape import metrics_routes

__all__ = ("ops_routes",)


def ops_routes() -> list[BaseRoute]:
    """The routes of the operations endpoints, for ``create_app``'s route list."""
    return [*export_routes(), *metrics_routes()]
