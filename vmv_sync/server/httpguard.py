"""The HTTP guard: what every HTTP request passes before any route sees it.

:class:`HttpGuard` is a pure ASGI middleware. For a request that may change
something (POST, PUT, PATCH, DELETE) it refuses, in this order and before any work
is done:

- a browser ``Origin`` that is neither the server's own nor in
  ``settings.allowed_origins`` (403): the rule of originpolicy.py, the WebSocket
  upgrade's too;
- a POST/PUT/PATCH whose ``content-type`` is not ``application/json`` (415):
  a cross-site page can send ``text/plain`` or form bodies without asking, but
  not JSON, which needs a CORS preflight this server never grants;
- a body over ``settings.max_body_bytes`` (413): ``Content-Length`` is judged
  first, then the chunks are counted as they arrive (bodyreader.py); the answer
  closes the connection, so the rest of a 150 MB body is never read.

Refusals are answered by :func:`~vmv_sync.server.httperrors.error_response`. Every
response gets the security headers (securityheaders.py). The per-address and
per-workshop rate limits are taken by the API's handlers (ratelimits.py).
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..errors import Forbidden, VmvSyncError
from .bodyreader import ClientGone, read_body, replay
from .httperrors import BadRequest, PayloadTooLarge, UnsupportedMediaType, error_response
from .originpolicy import origin_allowed
from .securityheaders import with_headers

__all__ = ("HttpGuard", "http_middleware")

logger = logging.getLogger(__name__)

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class HttpGuard:
    """ASGI middleware: Origin, content type and body size, then security headers.

    A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it must
    see the body as it streams in (to stop reading at the limit), and it leaves
    WebSocket and lifespan traffic untouched.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        send = with_headers(send, headers.get("host"), str(scope.get("path", "")))
        try:
            receive = await self._admit(scope, headers, receive)
        except ClientGone:
            return
        except VmvSyncError as exc:
            logger.info("http %s %s refused: %s", scope.get("method"), scope.get("path"), exc)
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _admit(self, scope: Scope, headers: Headers, receive: Receive) -> Receive:
        """Judge the request before the app sees it; returns the ``receive`` to pass on."""
        method = scope.get("method", "GET")
        limit = self.settings.max_body_bytes
        if method in _UNSAFE and not origin_allowed(headers, self.settings):
            raise Forbidden("this Origin may not use this server's API (see VMV_ALLOWED_ORIGINS)")
        if method in _WITH_BODY:
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                raise UnsupportedMediaType("send the body as JSON with 'content-type: application/json'")
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise BadRequest("the Content-Length header is not a number")
            if int(length) > limit:
                raise PayloadTooLarge(limit)
        if method not in _UNSAFE:
            return receive
        body = await read_body(receive, limit)
        return replay(body, receive)


def http_middleware(settings: Settings) -> list[Middleware]:
    """The middleware list for the app's ``Starlette(middleware=...)``."""
    return [Middleware(HttpGuard, settings=settings)]
